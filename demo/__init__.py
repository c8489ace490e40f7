"""The main job: the whole platform end to end on generated demo data (``make demo``)."""
