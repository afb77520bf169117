"""Third-party attack libraries run on a JAX ``logits_fn``, for parity checks of this package.

None of these libraries is a dependency of jaxrobust; install them with ``pip install
"jaxrobust[test]"`` (cleverhans 4.0.0, foolbox 3.3.4, adversarial-robustness-toolbox 1.20.1).

- :func:`cleverhans_attacks`: cleverhans' own JAX FGM and PGD, with two shims for API moves in
  JAX since cleverhans 4.0.0 (neither changes what is computed): ``jax.experimental.stax`` is
  aliased to its new home ``jax.example_libraries.stax`` (same ``logsoftmax``), and the
  ``jax.numpy`` that cleverhans' modules call ``np`` is given back the ``clip(a, a_min=, a_max=)``
  keywords that JAX renamed to ``min``/``max``.
- :func:`foolbox_model`: a ``foolbox.JAXModel`` (foolbox runs JAX natively through eagerpy).
- :class:`ARTClassifier` (via :func:`art_classifier`): a minimal Adversarial Robustness Toolbox
  classifier over a JAX ``logits_fn`` (``predict`` = softmax probabilities, ``class_gradient`` =
  gradients of the logits, ``loss_gradient`` = gradient of the cross-entropy), so that ART's
  attacks (JSMA among them) run on the same function as ours. ART has no JAX estimator.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

LogitsFn = Callable[[jax.Array], jax.Array]


def _require(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{module} is needed for this reference attack; install it with "
            f"`pip install {package}` or `pip install -e '.[test]'`."
        ) from error


def cleverhans_attacks() -> tuple[Callable, Callable]:
    """``(fast_gradient_method, projected_gradient_descent)`` of ``cleverhans.jax.attacks``."""
    stax = importlib.import_module("jax.example_libraries.stax")
    sys.modules.setdefault("jax.experimental.stax", stax)
    fgm = _require("cleverhans.jax.attacks.fast_gradient_method", "cleverhans==4.0.0")
    pgd = _require("cleverhans.jax.attacks.projected_gradient_descent", "cleverhans==4.0.0")
    utils = _require("cleverhans.jax.utils", "cleverhans==4.0.0")
    compat = types.SimpleNamespace(**{k: getattr(jnp, k) for k in dir(jnp) if k[0] != "_"})
    compat.clip = lambda a, a_min=None, a_max=None: jnp.clip(a, a_min, a_max)
    for module in (fgm, pgd, utils):
        module.np = compat
    return fgm.fast_gradient_method, pgd.projected_gradient_descent


def foolbox_model(logits_fn: LogitsFn, domain: tuple[float, float] = (0.0, 1.0)) -> Any:
    """``foolbox.JAXModel`` of ``logits_fn`` with input bounds ``domain``."""
    foolbox = _require("foolbox", "foolbox==3.3.4")
    return foolbox.JAXModel(logits_fn, bounds=domain)


def art_classifier(
    logits_fn: LogitsFn,
    input_shape: tuple[int, ...],
    num_classes: int,
    domain: tuple[float, float] | None = (0.0, 1.0),
) -> Any:
    """An ART classifier (``ClassGradientsMixin``, ``ClassifierMixin``) over ``logits_fn``."""
    _require("art", "adversarial-robustness-toolbox==1.20.1")
    from art.estimators.classification.classifier import ClassGradientsMixin, ClassifierMixin
    from art.estimators.estimator import BaseEstimator

    logits = jax.jit(logits_fn)
    probabilities = jax.jit(lambda x: jax.nn.softmax(logits_fn(x), axis=-1))

    @jax.jit
    def class_gradients(x, classes):  # [B, ...], [B, L] -> [B, L, ...]
        def one(x_i, c_i):
            jac = jax.jacrev(lambda z: logits_fn(z[None])[0])(x_i)  # [K, ...]
            return jac[c_i]

        return jax.vmap(one)(x, classes)

    @jax.jit
    def loss_gradient(x, labels):
        def total(z):
            log_p = jax.nn.log_softmax(logits_fn(z), axis=-1)
            return -jnp.sum(jnp.take_along_axis(log_p, labels[:, None], axis=-1))

        return jax.grad(total)(x)

    class ARTClassifier(ClassGradientsMixin, ClassifierMixin, BaseEstimator):
        estimator_params = BaseEstimator.estimator_params + ClassifierMixin.estimator_params

        def __init__(self):
            super().__init__(model=logits, clip_values=domain)
            self.nb_classes = num_classes
            self._input_shape = tuple(input_shape)

        @property
        def input_shape(self) -> tuple[int, ...]:
            return self._input_shape

        def predict(self, x: np.ndarray, batch_size: int = 128, **kwargs) -> np.ndarray:
            del batch_size, kwargs
            return np.array(probabilities(jnp.asarray(x, jnp.float32)))

        def fit(self, x, y, **kwargs) -> None:
            raise NotImplementedError("ARTClassifier only wraps a trained JAX logits function.")

        def class_gradient(self, x: np.ndarray, label=None, **kwargs) -> np.ndarray:
            del kwargs
            x = jnp.asarray(x, jnp.float32)
            if label is None:
                classes = np.broadcast_to(np.arange(num_classes), (len(x), num_classes))
            elif np.isscalar(label) or np.ndim(label) == 0:
                classes = np.full((len(x), 1), int(label))
            else:
                classes = np.asarray(label).reshape(len(x), 1)
            return np.array(class_gradients(x, jnp.asarray(classes)))

        def loss_gradient(self, x: np.ndarray, y: np.ndarray, **kwargs) -> np.ndarray:
            del kwargs
            labels = np.argmax(y, axis=1) if np.ndim(y) == 2 else np.asarray(y)
            return np.array(loss_gradient(jnp.asarray(x, jnp.float32), jnp.asarray(labels)))

    return ARTClassifier()
