"""The prediction output contract: targets, quantile labels, output columns and ``check_output``.

Defined once here; training writes models that honour it, the registry's gates check it, the service serves
it. May import: numpy only.
"""
