"""The mixing methods: the ways of using synthetic rows that
:func:`~augmentgen.metrics.downstream_gain` can try on the validation split, by name, and the
parsing of a name (``vary:<strength>``) into ``SyntheticMix`` and ``train_classifier`` options.
"""

from __future__ import annotations

import math

from ..errors import ConfigError

#: Ways of using synthetic rows that :func:`downstream_gain` can try on the validation split:
#: ``SyntheticMix`` options, the teacher being the real + classic classifier of the same data.
#: ``soft`` is credited against a control arm whose *real* rows get the same teacher targets,
#: so the gain counts only what the synthetic rows add (soft labels alone can help).
#: ``vary`` / ``interpolate`` / ``extrapolate`` make the rows from the batch's real rows
#: (:class:`~augmentgen.mixing.VariationSource`, encoder families only) instead of sampling them;
#: ``vary:<strength>`` (``vary:0.3``) sets ``vary``'s strength (0.5 otherwise), so the strength is
#: chosen on validation like the rest. ``weighted`` appends the rows as ``plain`` does and gives
#: them half the loss weight of a real row (``train_classifier``'s ``synthetic_weight``, as
#: DiffuLT, Shao et al. 2024); it needs no teacher. Options named in :data:`CLASSIFIER_OPTIONS`
#: go to ``train_classifier``, the others to ``SyntheticMix`` (:func:`split_method_options`).
MIXING_METHODS: dict[str, dict] = {
    "plain": {},
    "filter": {"filter_threshold": 0.5},
    "soft": {"soft_labels": True, "label_temperature": 2.0, "soft_label_weight": 0.5},
    "weighted": {"synthetic_weight": 0.5},
    "vary": {"variation": "vary"},
    "interpolate": {"variation": "interpolate"},
    "extrapolate": {"variation": "extrapolate"},
}


def method_options(method: str) -> dict:
    """The options of a mixing method's name: ``MIXING_METHODS[name]``, plus ``strength`` for
    ``vary:<strength>`` (``"vary:0.3"`` is ``{"variation": "vary", "strength": 0.3}``).

    Raises:
        ConfigError: an unknown name, or a strength that is not a number >= 0 (or on another method).
    """
    if not isinstance(method, str):
        raise ConfigError(f"a mixing method is a name like 'plain' or 'vary:0.3', got {method!r}")
    name, colon, strength = method.partition(":")
    if name not in MIXING_METHODS:
        raise ConfigError(f"unknown mixing method {method!r}; choose from {sorted(MIXING_METHODS)}, or "
                          "vary:<strength> like vary:0.3")
    if not colon:
        return MIXING_METHODS[name]
    try:
        value = float(strength)
    except ValueError:
        value = -1.0
    if name != "vary" or not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"mixing method {method!r}: only vary takes a strength, a number >= 0 after a colon "
                          "(like vary:0.3)")
    return {**MIXING_METHODS[name], "strength": value}


#: The options of a mixing method that are ``train_classifier``'s rather than ``SyntheticMix``'s.
CLASSIFIER_OPTIONS = ("synthetic_weight",)


def split_method_options(method: str) -> tuple[dict, dict]:
    """A mixing method's options (:func:`method_options`) as ``(mixer options, classifier options)``:
    ``SyntheticMix``'s, and ``train_classifier``'s (:data:`CLASSIFIER_OPTIONS`), which go with the
    mixer to every classifier it trains (``"weighted"`` is ``({}, {"synthetic_weight": 0.5})``)."""
    options = method_options(method)
    return ({k: v for k, v in options.items() if k not in CLASSIFIER_OPTIONS},
            {k: v for k, v in options.items() if k in CLASSIFIER_OPTIONS})


__all__ = ["CLASSIFIER_OPTIONS", "MIXING_METHODS", "method_options", "split_method_options"]
