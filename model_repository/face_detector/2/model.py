"""Triton adapter for ``face_detector`` version 2: FRAMES (B, H, W, 3) uint8 RGB -> BOXES (B, K, 4), SCORES (B, K),
COUNT (B, 1), with K (boxes per frame) read from the BOXES dims. OpenCV Haar cascade on a frame downscaled to the
smallest face looked for (``haar_config("2")``; see ``extraction/kernels/faces.py``).
"""

import json

import triton_python_backend_utils as pb_utils

from extraction.kernels.faces import check_frames, detect_faces, haar_config, load_cascade


def _dims(tensor_config):
    return [int(d) for d in tensor_config["dims"]]


def _error(message, internal=False):
    # TritonError exists only once the stub runs the model, not when model.py is imported.
    code = pb_utils.TritonError.INTERNAL if internal else pb_utils.TritonError.INVALID_ARG
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        boxes_cfg = pb_utils.get_output_config_by_name(config, "BOXES")
        scores_cfg = pb_utils.get_output_config_by_name(config, "SCORES")
        count_cfg = pb_utils.get_output_config_by_name(config, "COUNT")
        max_faces = _dims(boxes_cfg)[0]
        if _dims(boxes_cfg) != [max_faces, 4] or _dims(scores_cfg) != [max_faces] or _dims(count_cfg) != [1]:
            raise ValueError("config.pbtxt: BOXES must be [K, 4], SCORES [K] and COUNT [1]")
        self.dtypes = {
            name: pb_utils.triton_string_to_numpy(c["data_type"])
            for name, c in (("BOXES", boxes_cfg), ("SCORES", scores_cfg), ("COUNT", count_cfg))
        }
        self.cfg = haar_config("2", max_faces=max_faces)
        self.cascade = load_cascade()

    def execute(self, requests):
        responses = []
        for request in requests:
            frames = pb_utils.get_input_tensor_by_name(request, "FRAMES").as_numpy()
            try:
                check_frames(frames, self.cfg)
            except ValueError as exc:
                responses.append(_error(str(exc)))
                continue
            try:
                boxes, scores, count = detect_faces(self.cascade, frames, self.cfg)
            except Exception as exc:  # noqa: BLE001 - every request still gets its one response
                responses.append(_error(f"face detection failed: {exc}", internal=True))
                continue
            outputs = {"BOXES": boxes, "SCORES": scores, "COUNT": count}
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(k, v.astype(self.dtypes[k], copy=False)) for k, v in outputs.items()]
                )
            )
        return responses
