"""Errors of the features library (subclasses of :class:`common.errors.TrendflowError`)."""

from __future__ import annotations

from common.errors import TrendflowError


class FeatureSpecError(TrendflowError):
    """The spec file is missing, unreadable or invalid; the message lists every problem."""

    code = "feature_spec_invalid"


class MissingCriticalFeature(TrendflowError):
    """One or more critical features could not be computed for a run; ``details['missing']`` names them all
    and ``details['reasons']`` says why (``metadata: error``, ``value not finite`` ...)."""

    code = "missing_critical_feature"


class FeatureColumnsMissing(TrendflowError):
    """A frame handed to :class:`features.Imputer` or a model lacks columns the spec declares."""

    code = "feature_columns_missing"
