"""Scale-adapted SGHMC (Springenberg, Klein, Falkner & Hutter 2016) and its weight priors, as optax
transformations (the dissertation's Bayesian VAE decoders, Ch.3).

Springenberg et al., "Bayesian optimization with robust Bayesian neural networks", NeurIPS 2016,
eqs. 8-10, with the update of their reference implementation (RoBO/pybnn ``AdaptiveSGHMC``, the
Theano/TensorFlow variant that takes the gradient of the mean potential). Per parameter, with
``grad`` the gradient of ``U(theta) / N`` on a minibatch (N = dataset size) and all right-hand
sides evaluated at the previous state::

    r = 1 / (tau + 1);  minv = 1 / sqrt(v_hat)
    burn-in only (step < num_burn_in_steps):
        tau   <- tau + 1 - tau * g^2 / v_hat
        g     <- g - r * g + r * grad
        v_hat <- v_hat - r * v_hat + r * grad^2
    eps = lr / sqrt(N)
    sigma^2 = max(2 eps^2 C minv - eps^4, 1e-16)    (C = momentum_decay; gradient-noise estimate 0)
    v <- v - lr^2 minv grad - C v + sigma * N(0, 1)
    theta <- theta + v                              (the returned update is v)

The stationary distribution is approximately ``exp(-U(theta))``: ``lr^2 minv grad = eps^2 minv
grad U`` and ``sigma^2 ~ 2 eps^2 C minv``, i.e. SGHMC (Chen et al. 2014) with step ``eps``, mass
``1/minv`` and friction ``C / (eps minv)``. (The pybnn PyTorch port instead multiplies the
gradient by N and does not rescale lr; since its v_hat is then N^2 larger, drift and noise are
the same up to the ``eps^4`` term (``lr^4`` there). It also takes ``minv`` from the just-updated
``v_hat``; here, as in the Theano/TensorFlow versions, from the previous one.)

Feed the gradient of the MEAN over the minibatch of ``-log p(x | theta)`` (``potential / N``);
the prior's share ``-grad log p(theta) / N`` is added by chaining a prior transform first::

    opt = optax.chain(gamma_prior_precision(num_data=N, resample_every=steps_per_epoch),
                      sghmc(learning_rate=1e-3, momentum_decay=0.05, scale_grad=N))

The dissertation's prior: ``theta ~ N(0, 1/lambda)``, ``lambda ~ Gamma(1, 1)``, lambda Gibbs-
resampled once per epoch from ``Gamma(alpha + d/2, rate = beta + ||theta||^2 / 2)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any
_EPS = 1e-16  # the reference's constant guard against division by zero


class SGHMCState(NamedTuple):
    """State of :func:`sghmc`: the step count, the noise key and per-parameter statistics.

    Examples:
        >>> state = sghmc().init({"w": jnp.zeros(3)})
        >>> int(state.count), state.v_hat["w"].tolist(), state.momentum["w"].tolist()
        (0, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """

    count: jax.Array  # number of updates done, int32
    key: jax.Array  # PRNG key; step t uses fold_in(key, t)
    tau: PyTree  # adaptive window length of the running averages
    g: PyTree  # running mean of the gradient
    v_hat: PyTree  # running mean of the squared gradient (preconditioner = v_hat^-1/2)
    momentum: PyTree  # v, the last update


def sghmc(
    learning_rate: float = 1e-3,
    momentum_decay: float = 0.05,
    num_burn_in_steps: int = 3000,
    scale_grad: float = 1.0,
    seed: int = 0,
) -> optax.GradientTransformation:
    """Scale-adapted SGHMC sampler; the returned updates are added to the params.

    Args:
      learning_rate: ``lr`` of the module docstring (the paper's epsilon before scaling).
      momentum_decay: friction ``C`` per step.
      num_burn_in_steps: steps during which tau, g, v_hat adapt (then frozen). Samples taken
        during burn-in are not from the posterior.
      scale_grad: dataset size N; the gradients fed in are of ``U / N``.
      seed: seeds the injected noise (the key lives in the state; vmap over states with
        different keys for independent chains).

    Examples:
        Sampling U(theta) = theta^2 / 2 (one datum, N = 1, so the gradient fed in is theta):
        after burn-in the chain has the moments of N(0, 1).

        >>> opt = sghmc(learning_rate=0.1, momentum_decay=0.1, num_burn_in_steps=100)
        >>> def step(carry, _):
        ...     theta, state = carry
        ...     updates, state = opt.update(theta, state)
        ...     theta = optax.apply_updates(theta, updates)
        ...     return (theta, state), theta
        >>> theta = jnp.zeros(1)
        >>> _, chain = jax.lax.scan(step, (theta, opt.init(theta)), length=20_000)
        >>> chain = chain[1000:, 0]
        >>> bool(abs(chain.mean()) < 0.1), bool(0.8 < chain.var() < 1.2)
        (True, True)
    """
    if learning_rate <= 0:
        raise ValueError(f"sghmc: learning_rate must be positive, got {learning_rate}.")
    if not 0 <= momentum_decay <= 1:
        raise ValueError(f"sghmc: momentum_decay must be in [0, 1], got {momentum_decay}.")
    if num_burn_in_steps < 0:
        raise ValueError(f"sghmc: num_burn_in_steps must be >= 0, got {num_burn_in_steps}.")
    if scale_grad <= 0:
        raise ValueError(
            f"sghmc: scale_grad is the dataset size N and must be positive, got {scale_grad}."
        )
    lr = float(learning_rate)
    decay = float(momentum_decay)
    eps = lr / float(scale_grad) ** 0.5

    def init(params: PyTree) -> SGHMCState:
        ones = jax.tree.map(jnp.ones_like, params)
        return SGHMCState(
            count=jnp.zeros((), jnp.int32),
            key=jax.random.PRNGKey(seed),
            tau=ones,
            g=ones,
            v_hat=ones,
            momentum=jax.tree.map(jnp.zeros_like, params),
        )

    def update(grads: PyTree, state: SGHMCState, params: PyTree = None):
        del params
        burn_in = state.count < num_burn_in_steps
        grad_leaves, treedef = jax.tree.flatten(grads)
        keys = jax.random.split(jax.random.fold_in(state.key, state.count), len(grad_leaves) or 1)

        def step(grad, tau, g, v_hat, v, key):
            r = 1.0 / (tau + 1.0)
            minv = 1.0 / (jnp.sqrt(v_hat) + _EPS)
            new_tau = jnp.where(burn_in, tau + 1.0 - tau * g * g / (v_hat + _EPS), tau)
            new_g = jnp.where(burn_in, g - r * g + r * grad, g)
            new_v_hat = jnp.where(burn_in, v_hat - r * v_hat + r * grad * grad, v_hat)
            noise_var = jnp.maximum(2.0 * eps**2 * decay * minv - eps**4, 1e-16)
            noise = jnp.sqrt(noise_var) * jax.random.normal(key, jnp.shape(grad), v.dtype)
            new_v = v - lr**2 * minv * grad - decay * v + noise
            return new_tau, new_g, new_v_hat, new_v.astype(v.dtype)

        trees = (state.tau, state.g, state.v_hat, state.momentum)
        columns = [treedef.flatten_up_to(t) for t in trees]
        out = [
            step(*args)
            for args in zip(grad_leaves, *columns, keys[: len(grad_leaves)], strict=True)
        ]
        tau, g, v_hat, v = (treedef.unflatten([o[i] for o in out]) for i in range(4))
        return v, SGHMCState(state.count + 1, state.key, tau, g, v_hat, v)

    return optax.GradientTransformation(init, update)


def _need_params(params: PyTree, name: str) -> None:
    if params is None:
        raise ValueError(
            f"{name} needs the current params: call update(grads, state, params) "
            "(optax.chain passes them on)."
        )


class GaussianPriorState(NamedTuple):
    """No state; the precision is fixed.

    Examples:
        >>> gaussian_prior(1.0, 10).init({"w": jnp.zeros(3)})
        GaussianPriorState()
    """


def gaussian_prior(precision: float, num_data: int) -> optax.GradientTransformation:
    """Adds ``precision * theta / N``, the gradient of ``-log N(theta; 0, 1/precision) / N``.

    Examples:
        >>> prior = gaussian_prior(precision=2.0, num_data=4)
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> grads, _ = prior.update({"w": jnp.zeros(2)}, prior.init(params), params)
        >>> grads["w"].tolist()  # 2 * theta / 4
        [0.5, -1.0]
    """
    if precision < 0:
        raise ValueError(f"gaussian_prior: precision must be >= 0, got {precision}.")
    if num_data <= 0:
        raise ValueError(f"gaussian_prior: num_data must be positive, got {num_data}.")
    scale = float(precision) / float(num_data)

    def init(params: PyTree) -> GaussianPriorState:
        del params
        return GaussianPriorState()

    def update(grads: PyTree, state: GaussianPriorState, params: PyTree = None):
        _need_params(params, "gaussian_prior")
        return jax.tree.map(lambda gr, p: gr + scale * p, grads, params), state

    return optax.GradientTransformation(init, update)


class GammaPriorState(NamedTuple):
    """State of :func:`gamma_prior_precision`: lambda, the update count and the key.

    Examples:
        >>> state = gamma_prior_precision(100, 10, alpha=2.0, beta=1.0).init({"w": jnp.zeros(3)})
        >>> float(state.precision), int(state.count)  # the hyperprior mean alpha / beta
        (2.0, 0)
    """

    precision: jax.Array  # lambda, scalar
    count: jax.Array  # number of updates done, int32
    key: jax.Array  # PRNG key; the draw at step t uses fold_in(key, t)


def gamma_prior_precision(
    num_data: int,
    resample_every: int,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    init_precision: float | None = None,
    seed: int = 0,
) -> optax.GradientTransformation:
    """Prior ``theta ~ N(0, 1/lambda)``, hyperprior ``lambda ~ Gamma(alpha, rate=beta)``.

    Adds ``lambda * theta / N`` to the gradients. At the start of steps ``k * resample_every``
    (k >= 1, i.e. once per epoch when ``resample_every`` = steps per epoch) lambda is redrawn
    from its conditional ``Gamma(alpha + d/2, rate = beta + ||theta||^2 / 2)``, with theta the
    current params and d their number (one lambda for the whole tree this transform sees; wrap
    it in ``optax.multi_transform`` for one per group). Before the first draw lambda is
    ``init_precision`` (default: the hyperprior mean ``alpha / beta``).

    Examples:
        lambda = alpha / beta = 2 until the first draw, adding 2 * theta / N to the gradients:

        >>> prior = gamma_prior_precision(num_data=4, resample_every=2, alpha=2.0, beta=1.0)
        >>> params, zeros = {"w": jnp.ones(10_000)}, {"w": jnp.zeros(10_000)}
        >>> update = jax.jit(prior.update)
        >>> grads, state = update(zeros, prior.init(params), params)
        >>> float(state.precision), float(grads["w"][0])
        (2.0, 0.5)

        At step 2 lambda is drawn from Gamma(2 + d/2, rate = 1 + ||theta||^2 / 2), whose mean
        is close to 1 for d = ||theta||^2 = 10,000:

        >>> _, state = update(zeros, state, params)
        >>> _, state = update(zeros, state, params)
        >>> round(float(state.precision), 1)
        1.0
    """
    if num_data <= 0:
        raise ValueError(f"gamma_prior_precision: num_data must be positive, got {num_data}.")
    if resample_every < 1:
        raise ValueError(
            f"gamma_prior_precision: resample_every must be >= 1 step, got {resample_every}."
        )
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"gamma_prior_precision: alpha, beta must be > 0, got {alpha}, {beta}.")
    lam0 = alpha / beta if init_precision is None else float(init_precision)

    def init(params: PyTree) -> GammaPriorState:
        del params
        return GammaPriorState(
            jnp.asarray(lam0, jnp.float32), jnp.zeros((), jnp.int32), jax.random.PRNGKey(seed)
        )

    def update(grads: PyTree, state: GammaPriorState, params: PyTree = None):
        _need_params(params, "gamma_prior_precision")
        leaves = jax.tree.leaves(params)
        d = sum(x.size for x in leaves)
        sq = sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves)
        shape = alpha + 0.5 * d
        rate = beta + 0.5 * sq
        draw = jax.random.gamma(jax.random.fold_in(state.key, state.count), shape) / rate
        resample = (state.count > 0) & (state.count % resample_every == 0)
        lam = jnp.where(resample, draw, state.precision).astype(jnp.float32)
        new = jax.tree.map(lambda gr, p: gr + (lam / num_data).astype(p.dtype) * p, grads, params)
        return new, GammaPriorState(lam, state.count + 1, state.key)

    return optax.GradientTransformation(init, update)


def reseed(opt_state: Any, key: jax.Array) -> Any:
    """``opt_state`` with the key of every SGHMC / Gamma-prior state inside it replaced by
    ``fold_in(key, i)`` (i = their order), for independent chains:
    ``jax.vmap(lambda k: reseed(opt.init(params), k))(jax.random.split(key, runs))``.

    Examples:
        >>> opt = optax.chain(gamma_prior_precision(10, 5), sghmc())
        >>> state = opt.init({"w": jnp.zeros(2)})
        >>> a, b = reseed(state, jax.random.key(1)), reseed(state, jax.random.key(2))
        >>> bool((a[1].key != state[1].key).any()), bool((a[1].key != b[1].key).any())
        (True, True)
        >>> bool((a[0].key != a[1].key).any())  # each state inside gets its own key
        True
    """
    counter = iter(range(1 << 30))

    def replace(node):
        if isinstance(node, (SGHMCState, GammaPriorState)):
            new_key = jax.random.fold_in(key, next(counter))
            if jnp.issubdtype(new_key.dtype, jax.dtypes.prng_key):
                new_key = jax.random.key_data(new_key)
            return node._replace(key=new_key)
        return node

    kinds = (SGHMCState, GammaPriorState)
    return jax.tree.map(replace, opt_state, is_leaf=lambda x: isinstance(x, kinds))
