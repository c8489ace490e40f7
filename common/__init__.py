"""What every package of the platform shares: errors and their codes, atomic file writes, time stamps,
hashing and repository paths.

Owns: :mod:`common.errors`, :mod:`common.fsio`, :mod:`common.clock`, :mod:`common.hashing`, :mod:`common.auth`,
:mod:`common.paths`, :mod:`common.graph` (topological order of named dependencies), :mod:`common.configfile`
(a YAML config file read into a mapping), :mod:`common.gpu` (GPU memory via NVML, else torch.cuda: devices, peaks),
:mod:`common.process` (whether a recorded pid is alive).
May import: the standard library (and PyYAML, lazily, in `configfile`; pynvml / torch, lazily and only with an
NVIDIA driver, in `gpu`). Every other package may import it.
"""
