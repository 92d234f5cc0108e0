"""Models by name: built-ins, registered builders, or the user's own `module:function`.

    build_model("cnn", num_outputs=6, input_shape=(64, 64, 3), seed=0)
    build_model(config.model, num_outputs=..., input_shape=...)   # name + options

Every builder is called with keyword arguments `num_outputs` (the number of logits),
`input_shape` (one example's shape, without the batch axis), `seed`, `l2` and its own
options, and returns a `keras.Model` mapping `[B, *input_shape]` to `[B, num_outputs]`
logits. With a config section, a built-in takes the options its signature names
(`mlp`: `hidden_units`, `cnn`: `filters`); a `module:function` gets `model.kwargs`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import keras

from focal_dist.models import applications, cnn, mlp, resolver, unet

_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "mlp": mlp.build,
    "cnn": cnn.build,
    "resnet50": applications.build_resnet50,
    "efficientnet_b0": applications.build_efficientnet_b0,
    "unet": unet.build,  # per-pixel logits [B, H, W, C] (task.name = "segmentation")
}


def names() -> tuple[str, ...]:
    """The built-in and registered model names."""
    return tuple(_BUILDERS)


def register(name: str, builder: Callable[..., keras.Model]) -> None:
    """Makes `builder` available as `model.name = name` (from Python, before training)."""
    if not name or ":" in name:
        raise ValueError(f"a registered model name must be non-empty without ':'; got {name!r}")
    _BUILDERS[name] = builder


def _builder_options(builder: Callable, section: Mapping) -> dict:
    parameters = inspect.signature(builder).parameters
    reserved = {"name", "num_outputs", "input_shape", "seed", "l2", "kwargs", "dense"}
    return {k: section[k] for k in section if k in parameters and k not in reserved}


def build_model(
    config_or_name,
    *,
    num_outputs: int,
    input_shape: Sequence[int],
    seed: int = 0,
    l2: float = 0.0,
    dense: bool = False,
    **options,
) -> keras.Model:
    """The model named by `config_or_name` (a name, or a config section with `.name`).

    Args:
      config_or_name: "mlp", "cnn", "resnet50", "efficientnet_b0", a registered name,
        "module:function", or a mapping/ConfigDict with `name` and options.
      num_outputs: logits per example (1 for binary, C for multi-label and multiclass).
      input_shape: one example's shape without the batch axis.
      seed: initialiser seed (the same model on every worker).
      l2: L2 penalty on the kernels (in `model.losses`); 0 for none.
      dense: the model predicts per pixel: `[B, H, W, num_outputs]` logits (segmentation).
      **options: builder options; they override those of a config section.

    Returns:
      A keras.Model from `[B, *input_shape]` features to `[B, num_outputs]` logits
      (`dense`: `[B, H, W, num_outputs]`).
    """
    if isinstance(config_or_name, str):
        name, section = config_or_name, {}
    elif hasattr(config_or_name, "get") and "name" in config_or_name:
        name, section = config_or_name["name"], config_or_name
    else:
        raise ValueError(
            f"build_model takes a model name or a config section with a 'name'; got "
            f"{type(config_or_name).__name__}"
        )
    if not isinstance(num_outputs, int) or isinstance(num_outputs, bool) or num_outputs < 1:
        raise ValueError(f"num_outputs must be a positive int; got {num_outputs!r}")
    if resolver.is_spec(name):
        kwargs = {**dict(section.get("kwargs", None) or {}), **options}
        return resolver.build_user_model(
            name,
            num_outputs=num_outputs,
            input_shape=input_shape,
            seed=seed,
            l2=l2,
            kwargs=kwargs,
            dense=dense,
        )
    if name not in _BUILDERS:
        raise ValueError(
            f"model.name must be one of {', '.join(_BUILDERS)} or 'module:function' "
            f"(importable from PYTHONPATH); got {name!r}"
        )
    builder = _BUILDERS[name]
    arguments = {**_builder_options(builder, section), **options}
    model = builder(
        num_outputs=num_outputs, input_shape=tuple(input_shape), seed=seed, l2=l2, **arguments
    )
    return resolver.check_model(
        model, name, num_outputs=num_outputs, input_shape=input_shape, dense=dense
    )


__all__ = ["build_model", "names", "register"]
