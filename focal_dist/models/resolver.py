"""The user's own model: `config.model.name = "module:function"`.

`module` is imported from `sys.path` (the working directory and `PYTHONPATH`) and
`function` is called with keyword arguments:

    function(num_outputs=C, input_shape=(...), [seed=..., l2=...], **config.model.kwargs)

`num_outputs` is the number of logits (1 for binary, C otherwise) and `input_shape` one
example's feature shape without the batch axis (`(F,)` for vectors, `(H, W, channels)`
for images). `seed` and `l2` are passed only to a function that names them (or takes
`**kwargs`). It must return a `keras.Model` mapping a `[B, *input_shape]` batch to
`[B, num_outputs]` logits (dense prediction, e.g. segmentation: `[B, H, W, num_outputs]`
at the input's height and width); that model is what is trained, checkpointed and
exported.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np

_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def is_spec(name: str) -> bool:
    """Whether `name` is meant as `module:function` (it contains a colon)."""
    return isinstance(name, str) and ":" in name


def resolve(spec: str) -> Callable[..., keras.Model]:
    """The function named by `"module:function"`; ValueError naming `spec` otherwise."""
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise ValueError(
            f"model.name {spec!r} is not of the form 'module:function' (a dotted module "
            "importable from PYTHONPATH, a colon, a function name), e.g. 'my_models:build'"
        )
    module_name, function_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name + ".").startswith(error.name + "."):
            raise ValueError(
                f"model.name {spec!r}: no module named {error.name!r} on sys.path; put the "
                "directory that holds it on PYTHONPATH"
            ) from error
        raise ValueError(
            f"model.name {spec!r}: importing {module_name!r} failed: {error}"
        ) from error
    except Exception as error:
        raise ValueError(
            f"model.name {spec!r}: importing {module_name!r} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    function = getattr(module, function_name, None)
    if function is None:
        raise ValueError(
            f"model.name {spec!r}: module {module_name!r} ({module.__file__}) has no "
            f"attribute {function_name!r}"
        )
    if not callable(function):
        raise ValueError(
            f"model.name {spec!r}: {function_name!r} is a {type(function).__name__}, "
            "not a function returning a keras.Model"
        )
    return function


def _accepts(function: Callable, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def build_user_model(
    spec: str,
    *,
    num_outputs: int,
    input_shape: Sequence[int],
    seed: int = 0,
    l2: float = 0.0,
    kwargs: Mapping | None = None,
    dense: bool = False,
) -> keras.Model:
    """Calls the function named by `spec` (see the module docstring) and checks its model."""
    function = resolve(spec)
    arguments = {"num_outputs": int(num_outputs), "input_shape": tuple(int(d) for d in input_shape)}
    if _accepts(function, "seed"):
        arguments["seed"] = seed
    if _accepts(function, "l2"):
        arguments["l2"] = l2
    elif l2:
        raise ValueError(
            f"model.l2={l2} is set but model.name {spec!r} takes no 'l2' argument; add the "
            "penalty in the model or set model.l2=0"
        )
    arguments.update(dict(kwargs or {}))
    try:
        model = function(**arguments)
    except TypeError as error:
        raise ValueError(
            f"model.name {spec!r}: calling it with keyword arguments {sorted(arguments)} "
            f"failed: {error}"
        ) from error
    return check_model(model, spec, num_outputs=num_outputs, input_shape=input_shape, dense=dense)


def check_model(
    model, name: str, *, num_outputs: int, input_shape: Sequence[int], dense: bool = False
) -> keras.Model:
    """`model` if it maps `[B, *input_shape]` to `[B, num_outputs]` logits (`dense`:
    `[B, H, W, num_outputs]`, H and W the input's); else ValueError.

    A subclassed model that has no variables yet is called once on a zero example, so
    that its variables are created here (under the backend's scope), not in a step.
    """
    expected = f"a keras.Model mapping [batch, {', '.join(map(str, input_shape))}] features "
    outputs = [*input_shape[:2], num_outputs] if dense else [num_outputs]
    expected += f"to [batch, {', '.join(map(str, outputs))}] logits"
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"model.name {name!r} returned a {type(model).__name__}; expected {expected}"
        )
    try:
        if not model.built:
            model(np.zeros((1, *input_shape), np.float32))
        output = model.compute_output_spec(keras.KerasTensor((None, *input_shape), "float32"))
    except Exception as error:
        raise ValueError(
            f"model.name {name!r}: its model does not accept input_shape "
            f"{tuple(input_shape)} ({type(error).__name__}: {error}); expected {expected}"
        ) from error
    shape = getattr(output, "shape", None)
    if shape is None or list(shape)[1:] != outputs:
        shapes = shape if shape is not None else [getattr(o, "shape", o) for o in output]
        raise ValueError(
            f"model.name {name!r} returned a model whose output has shape {shapes}; "
            f"expected {expected} (num_outputs={num_outputs})"
        )
    return model
