"""jaxrobust: robust deep learning in JAX (OOD detection, uncertainty, adversarial robustness).

Packages, one concern each (see DESIGN.md): ``data``, ``nn``, ``distributions``, ``models``,
``train``, ``scores``, ``metrics``, ``evaluate``, ``cli``.
"""

__version__ = "0.1.0"
