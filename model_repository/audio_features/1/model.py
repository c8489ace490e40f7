"""Triton adapter for ``audio_features``: WAVEFORM (B, N) fp32 mono -> LOGMEL (B, n_mels), STATS (B, 3)
``[rms, spectral_centroid_hz, zero_crossing_rate]``. ``sample_rate`` comes from the config parameters and
``n_mels`` from the LOGMEL dims; see ``extraction/kernels/audio.py``.
"""

import json

import triton_python_backend_utils as pb_utils

from extraction.kernels.audio import STAT_NAMES, MelConfig, audio_features, check_waveforms, mel_filterbank


def _dims(tensor_config):
    return [int(d) for d in tensor_config["dims"]]


def _error(message, internal=False):
    # TritonError exists only once the stub runs the model, not when model.py is imported.
    code = pb_utils.TritonError.INTERNAL if internal else pb_utils.TritonError.INVALID_ARG
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        logmel_cfg = pb_utils.get_output_config_by_name(config, "LOGMEL")
        stats_cfg = pb_utils.get_output_config_by_name(config, "STATS")
        if _dims(stats_cfg) != [len(STAT_NAMES)] or len(_dims(logmel_cfg)) != 1:
            raise ValueError(f"config.pbtxt: LOGMEL must be [n_mels] and STATS [{len(STAT_NAMES)}]")
        sample_rate = int(config["parameters"]["sample_rate"]["string_value"])
        self.cfg = MelConfig(sample_rate=sample_rate, n_mels=_dims(logmel_cfg)[0])
        self.fb = mel_filterbank(self.cfg)  # (n_mels, n_fft // 2 + 1)
        self.dtypes = {
            "LOGMEL": pb_utils.triton_string_to_numpy(logmel_cfg["data_type"]),
            "STATS": pb_utils.triton_string_to_numpy(stats_cfg["data_type"]),
        }

    def execute(self, requests):
        responses = []
        for request in requests:
            waves = pb_utils.get_input_tensor_by_name(request, "WAVEFORM").as_numpy()
            try:
                check_waveforms(waves)
            except ValueError as exc:
                responses.append(_error(str(exc)))
                continue
            try:
                logmel, stats = audio_features(waves, self.cfg, self.fb)
            except Exception as exc:  # noqa: BLE001 - every request still gets its one response
                responses.append(_error(f"audio features failed: {exc}", internal=True))
                continue
            outputs = {"LOGMEL": logmel, "STATS": stats}
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(k, v.astype(self.dtypes[k], copy=False)) for k, v in outputs.items()]
                )
            )
        return responses
