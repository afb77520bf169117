"""jaxrobust as a library, from a researcher's own jitted script (public names only).

Trains a small VAE and a CNN for a few optax steps on random data, scores the VAE's ELBO and
IWAE in one call, trains a 3-member CNN ensemble as one vmapped program, attacks the CNN with
PGD and the VAE's encoder with the latent attack. Runs in well under a minute on a CPU:

    python examples/library_use.py
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

import jaxrobust as jr

IMAGE_SHAPE = (28, 28, 1)
STEPS = 5


def make_step(model, optimizer):
    """One jitted optax step on the mean of the model's per-example losses."""

    @jax.jit
    def step(variables, opt_state, batch, key):
        params, state = jr.models.split_variables(variables)

        def objective(p):
            losses, (metrics, new_state) = model.loss(
                jr.models.merge_variables(p, state), batch, key=key, train=True
            )
            return jnp.mean(losses), new_state

        (loss, new_state), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return jr.models.merge_variables(params, new_state), opt_state, loss

    return step


def train(model, variables, batch, key, steps=STEPS):
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(variables["params"])
    step = make_step(model, optimizer)
    losses = []
    for k in jax.random.split(key, steps):
        variables, opt_state, loss = step(variables, opt_state, batch, k)
        losses.append(float(loss))
    return variables, losses


def main() -> dict:
    key = jax.random.key(0)
    data_key, vae_key, cnn_key, ens_key, attack_key = jax.random.split(key, 5)
    images = jax.random.uniform(data_key, (32, *IMAGE_SHAPE))
    labels = jax.random.randint(data_key, (32,), 0, 10)
    batch = {"image": images, "label": labels}

    # A small VAE: conv encoder/decoder, Gaussian latent family, Bernoulli likelihood.
    vae = jr.models.make_vae(IMAGE_SHAPE, latent_dim=4, encoder_features=(8, 16),
                             decoder_features=(16, 8), iwae_samples=16, iwae_chunk=8)  # fmt: skip
    vae_vars, vae_losses = train(vae, vae.init(vae_key, images), batch, vae_key)
    scores = jax.jit(functools.partial(vae.score, names=["elbo", "iwae", "iwae_std"]))(
        vae_vars, images, key=vae_key
    )

    # A small CNN classifier.
    cnn = jr.models.make_classifier(jr.nn.SmallCNN(10, features=(8, 16), hidden=32))
    cnn_vars, cnn_losses = train(cnn, cnn.init(cnn_key, images), batch, cnn_key)

    # A 3-member ensemble trained as ONE program: init and steps vmapped over the members.
    optimizer = optax.adam(1e-3)
    member_keys = jax.random.split(ens_key, 3)
    members = jax.vmap(cnn.init, in_axes=(0, None))(member_keys, images)
    opt_states = jax.vmap(optimizer.init)(members["params"])
    step = jax.vmap(make_step(cnn, optimizer), in_axes=(0, 0, None, 0))
    for k in jax.random.split(ens_key, STEPS):
        members, opt_states, member_losses = step(
            members, opt_states, batch, jax.random.split(k, 3)
        )
    member_logits = jax.vmap(cnn.logits, in_axes=(0, None))(members, images)  # [3, N, 10]
    ensemble = jr.scores.classifier_stack_scores(member_logits)

    # PGD on the CNN (L-inf, eps 0.1) and the latent attack on the VAE's encoder.
    loss_fn = jr.attacks.cross_entropy_loss(lambda x: cnn.logits(cnn_vars, x))
    pgd = jax.jit(functools.partial(jr.attacks.pgd, loss_fn, epsilon=0.1, step_size=0.02,
                                    num_steps=10))  # fmt: skip
    x_pgd = pgd(images, labels, key=attack_key)
    x_latent = jr.attacks.latent_attack(
        lambda x: vae.encode(vae_vars, x),
        images,
        key=attack_key,
        delta=0.1,
        step_size=0.02,
        num_steps=10,
        divergence=vae.latent.divergence,
    )
    divergence = vae.latent.divergence(vae.encode(vae_vars, x_latent), vae.encode(vae_vars, images))
    return {
        "vae_losses": vae_losses,
        "cnn_losses": cnn_losses,
        "elbo": scores["elbo"],
        "iwae": scores["iwae"],
        "iwae_std": scores["iwae_std"],
        "member_losses": member_losses,
        "ensemble": ensemble,
        "member_logits": member_logits,
        "images": images,
        "labels": labels,
        "x_pgd": x_pgd,
        "clean_accuracy": float(jnp.mean(jnp.argmax(cnn.logits(cnn_vars, images), -1) == labels)),
        "pgd_accuracy": float(jnp.mean(jnp.argmax(cnn.logits(cnn_vars, x_pgd), -1) == labels)),
        "x_latent": x_latent,
        "latent_divergence": divergence,
    }


if __name__ == "__main__":
    out = main()
    print(f"VAE -ELBO over {STEPS} steps: {[round(v, 1) for v in out['vae_losses']]}")
    print(f"CNN cross-entropy over {STEPS} steps: {[round(v, 3) for v in out['cnn_losses']]}")
    print(f"mean ELBO {float(out['elbo'].mean()):.1f}, mean IWAE {float(out['iwae'].mean()):.1f}")
    mutual_information = float(out["ensemble"]["mutual_information"].mean())
    print(f"ensemble mean mutual information {mutual_information:.4f}")
    print(f"CNN accuracy clean {out['clean_accuracy']:.2f}, under PGD {out['pgd_accuracy']:.2f}")
    print(f"latent attack mean symmetric KL {float(out['latent_divergence'].mean()):.3f}")
