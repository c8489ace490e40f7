"""``feature_spec.yaml``: typed, validated declaration of every feature, mask and target.

The spec is loaded once (:func:`load_spec`), validated against the extractor's artifact schemas
(:data:`extraction.schemas.SCHEMAS`) and hashed over its *content* (comments and key order do not change
the hash). Every problem found is reported in one :class:`FeatureSpecError` (code ``feature_spec_invalid``).

Column naming (stable, part of the API):
    * a scalar feature ``name`` is one column ``name``;
    * an embedding feature ``name`` with ``projection.dim = k`` is ``name_00 .. name_{k-1}``;
    * a feature with ``mask: true`` adds ``mask__name`` (int8, 1 = value was present);
    * a target ``name`` is a column ``name`` holding ``transform(label)``.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from extraction.schemas import SCHEMAS
from features.errors import FeatureSpecError

DEFAULT_SPEC_PATH = Path(__file__).resolve().parent.parent / "feature_spec.yaml"

Modality = Literal["visual", "motion", "audio", "text", "meta"]
MODALITIES: tuple[str, ...] = ("visual", "motion", "audio", "text", "meta")

# Aggregations over the elements of an array field (a field of shape (N,), or (N, B) flattened per run).
ARRAY_AGGREGATIONS: tuple[str, ...] = ("mean", "max", "min", "std", "sum", "count", "rate")
# Aggregations of a 0-d (scalar) field.
SCALAR_AGGREGATIONS: tuple[str, ...] = ("value", "ratio")
# Aggregations over rows of one or more (N, D) / (D,) fields.
EMBEDDING_AGGREGATIONS: tuple[str, ...] = ("embedding_mean", "embedding_mean_norm")
PERCENTILE_RE = re.compile(r"^p(\d{1,2})$")  # p10, p50, p90 ...
AGGREGATIONS_HELP = (f"{', '.join(ARRAY_AGGREGATIONS + SCALAR_AGGREGATIONS + EMBEDDING_AGGREGATIONS)} "
                     "or a percentile p0..p99")

SEMVER_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where a feature's input lives: ``component`` + ``field`` (+ ``fields`` / ``denominator``) of an NPZ,
    or ``metadata``: a dotted path into the run manifest's sidecar metadata (``channel.subscribers``)."""

    component: str | None = None
    field: str | None = None
    fields: tuple[str, ...] | None = Field(None, description="several fields pooled together (embeddings)")
    denominator: str | None = Field(None, description="scalar field of the same component (aggregation ratio)")
    metadata: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        npz = self.component is not None
        if npz == (self.metadata is not None):
            raise ValueError("give either component (+ field/fields) or metadata")
        if npz and (self.field is None) == (self.fields is None):
            raise ValueError("give exactly one of field / fields")
        return self

    @property
    def field_names(self) -> tuple[str, ...]:
        if self.fields is not None:
            return self.fields
        return (self.field,) if self.field is not None else ()

    @property
    def label(self) -> str:
        return f"metadata.{self.metadata}" if self.metadata else f"{self.component}.{'+'.join(self.field_names)}"


class Projection(_Strict):
    """Fixed, seeded Gaussian random projection ``(D,) -> (dim,)`` (matrix ``N(0, 1/dim)`` drawn from
    ``numpy.random.default_rng([seed, D])``); deterministic on every machine, no fitting."""

    method: Literal["gaussian_random"] = "gaussian_random"
    dim: int = Field(ge=1, le=256)
    seed: int = Field(ge=0)


ImputeStrategy = Literal["keep_nan", "median", "mean", "constant"]


class Imputation(_Strict):
    """What :class:`features.Imputer` does with a missing value, per model family. ``median``/``mean`` are
    learned on the training table; ``constant`` uses ``value`` (also the fallback when nothing was seen)."""

    tree: ImputeStrategy = "keep_nan"
    network: Literal["median", "mean", "constant"] = "median"
    value: float = 0.0


class Feature(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    modality: Modality
    source: Source
    aggregation: str
    transform: Literal["none", "log1p", "age_bucket", "category"] = "none"
    dtype: Literal["float32", "float64"] = "float32"
    categories: list[str] | None = Field(None, description="category: the value's index in this list (a value "
                                                           "not in it is missing)")
    critical: bool = False
    mask: bool = False
    on_empty: Literal["missing", "read"] = Field(
        "missing", description="status 'empty': 'missing' = value missing; 'read' = computed from the (zero-length"
                               " or NaN) arrays, for fields that stay meaningful, e.g. has_audio=0, no faces")
    threshold: float | None = Field(None, description="rate: fraction of elements > threshold")
    projection: Projection | None = None
    imputation: Imputation | None = None
    description: str = ""

    @property
    def percentile(self) -> float | None:
        m = PERCENTILE_RE.match(self.aggregation)
        return float(m.group(1)) if m else None

    @property
    def columns(self) -> list[str]:
        if self.aggregation == "embedding_mean" and self.projection is not None:
            return [f"{self.name}_{i:02d}" for i in range(self.projection.dim)]
        return [self.name]

    @property
    def mask_column(self) -> str | None:
        return f"mask__{self.name}" if self.mask else None

    def semantic(self) -> dict[str, Any]:
        """Everything that defines the *meaning* of the values (not description/critical/mask/imputation)."""
        out = self.model_dump(include={"modality", "source", "aggregation", "transform", "dtype", "on_empty",
                                       "threshold", "projection"}, mode="json")
        if self.categories is not None:  # only where set: the meaning of every older feature is unchanged
            out["categories"] = list(self.categories)
        return out


class Target(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(description="column of the labels file")
    metric: Literal["views", "likes"]
    horizon_days: int = Field(ge=1)
    optional: bool = Field(False, description="may be missing; a row missing a non-optional target is dropped")


class Targets(_Strict):
    transform: Literal["log1p", "none"] = "log1p"
    columns: tuple[Target, ...]


class AgeBuckets(_Strict):
    """Edges in hours of ``video_age_hours_at_snapshot1``: bucket ``i`` is ``edges[i-1] <= age < edges[i]``."""

    edges_hours: tuple[float, ...]
    labels: tuple[str, ...]

    @model_validator(mode="after")
    def _consistent(self) -> AgeBuckets:
        if list(self.edges_hours) != sorted(set(self.edges_hours)):
            raise ValueError("edges_hours must be strictly increasing")
        if len(self.labels) != len(self.edges_hours) + 1:
            raise ValueError(f"need {len(self.edges_hours) + 1} labels for {len(self.edges_hours)} edges")
        return self


class Defaults(_Strict):
    imputation: Imputation = Imputation()
    dtype: Literal["float32", "float64"] = Field("float32", description="dtype of features that declare none")


class FeatureSpec(_Strict):
    feature_schema_version: str
    description: str = ""
    age_buckets: AgeBuckets
    defaults: Defaults = Defaults()
    features: tuple[Feature, ...]
    targets: Targets

    @model_validator(mode="before")
    @classmethod
    def _default_dtype(cls, raw: Any) -> Any:
        """A feature without ``dtype`` takes ``defaults.dtype`` (so every feature's dtype is explicit once loaded)."""
        if isinstance(raw, dict) and isinstance(raw.get("features"), list | tuple):
            dtype = ((raw.get("defaults") or {}).get("dtype")) or "float32"
            raw = {**raw, "features": [({"dtype": dtype} | f) if isinstance(f, dict) and "dtype" not in f else f
                                       for f in raw["features"]]}
        return raw

    @field_validator("feature_schema_version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SEMVER_RE.match(v):
            raise ValueError(f"{v!r} is not a semantic version MAJOR.MINOR.PATCH")
        return v

    # -- derived, stable views --------------------------------------------------------------------------
    @cached_property
    def spec_hash(self) -> str:
        """sha256 (first 16 hex) of the canonical JSON of the validated content."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        m = SEMVER_RE.match(self.feature_schema_version)
        assert m is not None
        return int(m.group(1)), int(m.group(2)), int(m.group(3))

    def imputation_for(self, feature: Feature) -> Imputation:
        return feature.imputation or self.defaults.imputation

    @cached_property
    def feature_columns(self) -> list[str]:
        return [c for f in self.features for c in f.columns]

    @cached_property
    def mask_columns(self) -> list[str]:
        return [f.mask_column for f in self.features if f.mask_column]

    @cached_property
    def components(self) -> list[str]:
        """Components whose artifacts the spec reads, in first-use order."""
        out: list[str] = []
        for f in self.features:
            if f.source.component and f.source.component not in out:
                out.append(f.source.component)
        return out

    def fields_needed(self) -> dict[str, list[str]]:
        """component -> array fields the spec reads (lets the batch reader skip the rest)."""
        out: dict[str, list[str]] = {}
        for f in self.features:
            s = f.source
            if s.component is None:
                continue
            names = list(s.field_names) + ([s.denominator] if s.denominator else [])
            for n in names:
                if n not in out.setdefault(s.component, []):
                    out[s.component].append(n)
        return out

    def by_modality(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {m: [] for m in MODALITIES}
        for f in self.features:
            out[f.modality].extend(f.columns)
        return out


# ---- validation against the artifact schemas -------------------------------------------------------------

def _check_feature(f: Feature) -> list[str]:
    where = f"feature {f.name!r}"
    s = f.source
    agg = f.aggregation
    problems: list[str] = []
    known = ARRAY_AGGREGATIONS + SCALAR_AGGREGATIONS + EMBEDDING_AGGREGATIONS
    if agg not in known and f.percentile is None:
        return [f"{where}: unknown aggregation {agg!r} (use {AGGREGATIONS_HELP})"]
    if (f.transform == "category") != (f.categories is not None):
        problems.append(f"{where}: transform 'category' and a `categories` list go together")
    if f.transform == "category" and s.metadata is None:
        problems.append(f"{where}: transform 'category' reads a metadata source (a text value)")
    if s.metadata is not None:
        if agg != "value":
            problems.append(f"{where}: a metadata source takes aggregation 'value', not {agg!r}")
    else:
        schema = SCHEMAS.get(s.component or "")
        if schema is None:
            return [f"{where}: unknown component {s.component!r} (known: {', '.join(SCHEMAS)})"]
        for name in s.field_names + ((s.denominator,) if s.denominator else ()):
            if name not in schema.arrays:
                problems.append(f"{where}: component {s.component!r} has no field {name!r} "
                                f"(fields: {', '.join(schema.arrays)})")
        if problems:
            return problems
        shapes = {n: schema.arrays[n].shape for n in s.field_names}
        if agg in EMBEDDING_AGGREGATIONS:
            widths = {sh[-1] for sh in shapes.values() if len(sh) >= 1}
            if any(len(sh) not in (1, 2) for sh in shapes.values()) or len(widths) != 1:
                problems.append(f"{where}: {agg} needs (N, D) or (D,) fields of one width, got {shapes}")
        elif len(s.field_names) != 1:
            problems.append(f"{where}: aggregation {agg!r} takes one field, got {list(s.field_names)}")
        else:
            shape = next(iter(shapes.values()))
            if agg in SCALAR_AGGREGATIONS and shape:
                problems.append(f"{where}: aggregation {agg!r} needs a scalar field; {s.label} has shape {shape}")
            if agg not in SCALAR_AGGREGATIONS and not shape:
                problems.append(f"{where}: aggregation {agg!r} needs an array field; {s.label} is a scalar "
                                "(use 'value')")
        if agg == "ratio" and not s.denominator:
            problems.append(f"{where}: aggregation 'ratio' needs source.denominator")
        if s.denominator and agg != "ratio":
            problems.append(f"{where}: source.denominator is only used by aggregation 'ratio'")
        if s.denominator and schema.arrays[s.denominator].shape:
            problems.append(f"{where}: denominator {s.denominator!r} must be a scalar field")
    if agg == "embedding_mean" and f.projection is None:
        problems.append(f"{where}: embedding_mean needs a projection (dim, seed) to keep the width bounded")
    if f.projection is not None and agg != "embedding_mean":
        problems.append(f"{where}: projection is only used by embedding_mean")
    if agg == "rate" and f.threshold is None:
        problems.append(f"{where}: aggregation 'rate' needs threshold")
    if f.threshold is not None and agg != "rate":
        problems.append(f"{where}: threshold is only used by aggregation 'rate'")
    if agg == "embedding_mean" and f.transform != "none":
        problems.append(f"{where}: embedding features take transform 'none'")
    return problems


def _check_spec(spec: FeatureSpec) -> list[str]:
    problems: list[str] = []
    for f in spec.features:
        problems.extend(_check_feature(f))
    seen: dict[str, str] = {}
    columns = [(c, f.name) for f in spec.features for c in f.columns + ([f.mask_column] if f.mask else [])]
    columns += [(t.name, f"target {t.name}") for t in spec.targets.columns]
    for col, owner in columns:
        if col in seen:
            problems.append(f"duplicate name {col!r} (from {seen[col]!r} and {owner!r})")
        seen.setdefault(col, owner)
    if not spec.features:
        problems.append("no features declared")
    if not spec.targets.columns:
        problems.append("no targets declared")
    if not any(f.critical for f in spec.features):
        problems.append("no critical feature: declare at least the first-snapshot meta features critical")
    return problems


def _format_pydantic(err: ValidationError, raw: dict[str, Any]) -> list[str]:
    out = []
    for e in err.errors():
        loc = list(e["loc"])
        # name the feature instead of its index where we can
        if len(loc) >= 2 and loc[0] == "features" and isinstance(loc[1], int):
            try:
                loc[1] = repr(raw["features"][loc[1]].get("name", loc[1]))
            except (IndexError, AttributeError, KeyError, TypeError):
                pass
        path = ".".join(str(p) for p in loc) or "<root>"
        msg = e["msg"]
        if e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{path}: {msg}")
    return out


def parse_spec(raw: dict[str, Any], origin: str = "<spec>") -> FeatureSpec:
    """Validate a spec given as a dict (the parsed YAML). Raises :class:`FeatureSpecError`."""
    if not isinstance(raw, dict):
        raise FeatureSpecError(f"{origin}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        spec = FeatureSpec.model_validate(raw)
    except ValidationError as err:
        problems = _format_pydantic(err, raw)
        raise FeatureSpecError(f"{origin}: {len(problems)} problem(s): " + "; ".join(problems),
                               problems=problems) from None
    problems = _check_spec(spec)
    if problems:
        raise FeatureSpecError(f"{origin}: {len(problems)} problem(s): " + "; ".join(problems), problems=problems)
    return spec


def load_spec(path: str | Path | None = None) -> FeatureSpec:
    """Load and validate ``feature_spec.yaml`` (default: the repository's). Raises :class:`FeatureSpecError`."""
    path = Path(path) if path is not None else DEFAULT_SPEC_PATH
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise FeatureSpecError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise FeatureSpecError(f"{path}: not valid YAML ({exc})") from None
    return parse_spec(raw, origin=str(path))


def raw_columns(spec: FeatureSpec) -> list[str]:
    """The input columns a model consumes, in a stable order: feature columns (spec order), then masks."""
    return [*spec.feature_columns, *spec.mask_columns]


def target_columns(spec: FeatureSpec) -> list[str]:
    """Target columns (already ``spec.targets.transform``-ed) in spec order."""
    return [t.name for t in spec.targets.columns]
