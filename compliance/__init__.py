"""Licence compliance: the model licence inventory, the licence policy, installed dependencies' licences, SBOM.

Owns ``licenses.yaml`` (the one inventory; ``MODEL_LICENSES.md`` is rendered from it), ``conf/license_policy.yaml``
(allow / review / deny lists, aliases, exceptions with a reason and an expiry) and ``make licenses`` / ``make sbom``.
Imports only :mod:`common`; training (licence tags, SBOM per registered version) and registry (the promotion gate)
import it.

    check_repo(root) -> LicenceReport          every offender of `make licenses`, each naming what is wrong
    model_licences(spec_components, root)      {model: SPDX expression} of the models that fed those components
    write_sbom(out) -> Sbom                    CycloneDX JSON of the installed environment (cyclonedx-py)
"""
