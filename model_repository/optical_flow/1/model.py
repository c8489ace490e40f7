"""Triton adapter for ``optical_flow``: FRAME_PAIRS (B, 2, H, W) uint8 grayscale -> MOTION_STATS (B, 4) fp32
``[magnitude_mean, magnitude_p95, moving_fraction, direction_coherence]``. OpenCV DIS dense flow;
see ``extraction/kernels/flow.py``.
"""

import json

import triton_python_backend_utils as pb_utils

from extraction.kernels.flow import STAT_NAMES, check_pairs, create_dis, motion_stats


def _dims(tensor_config):
    return [int(d) for d in tensor_config["dims"]]


def _error(message, internal=False):
    # TritonError exists only once the stub runs the model, not when model.py is imported.
    code = pb_utils.TritonError.INTERNAL if internal else pb_utils.TritonError.INVALID_ARG
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        out_cfg = pb_utils.get_output_config_by_name(config, "MOTION_STATS")
        if _dims(out_cfg) != [len(STAT_NAMES)]:
            raise ValueError(f"config.pbtxt MOTION_STATS dims must be [{len(STAT_NAMES)}]")
        self.out_dtype = pb_utils.triton_string_to_numpy(out_cfg["data_type"])
        self.dis = create_dis()

    def execute(self, requests):
        responses = []
        for request in requests:
            pairs = pb_utils.get_input_tensor_by_name(request, "FRAME_PAIRS").as_numpy()
            try:
                check_pairs(pairs)
            except ValueError as exc:
                responses.append(_error(str(exc)))
                continue
            try:
                stats = motion_stats(self.dis, pairs)  # (B, 4)
            except Exception as exc:  # noqa: BLE001 - every request still gets its one response
                responses.append(_error(f"optical flow failed: {exc}", internal=True))
                continue
            out = stats.astype(self.out_dtype, copy=False)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("MOTION_STATS", out)]))
        return responses
