"""Per-sample gradient clipping in one backward pass, for stacks of linear layers.

DP-SGD needs, for a batch of n rows, the sum of per-row gradients each clipped to norm C:

    g = Σ_i c_i ∇ℓ_i,   c_i = min(1, C / (‖∇ℓ_i‖ + 1e-6))

(the same clipping factor Opacus uses). For a linear layer z = a Wᵀ + b on 2-D input,
row i's gradient is the outer product of its output gradient and its input:
∇_W ℓ_i = g_i a_iᵀ and ∇_b ℓ_i = g_i, so ‖∇_W ℓ_i‖ = ‖g_i‖·‖a_i‖ and no per-row gradient
ever needs to exist. Opacus's ghost clipping uses that for the norms, then runs a second
full backward pass on the reweighted loss to get g. Here the output gradients g_i of all
layers come from one backward pass that skips the weight gradients entirely, and the
clipped sum is formed directly as (c ⊙ G)ᵀ A per layer — the book-keeping scheme of
Bu et al. (2023). Same result, about one backward pass less.

Only the clipping is done here; noise, scaling and accounting stay with Opacus's
`DPOptimizerFastGradientClipping`, which expects exactly this sum in `p.grad`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BookkeepingClipper", "supports_bookkeeping"]

_STABILITY = 1e-6  # Opacus's: c_i = C / (norm_i + 1e-6)


def supports_bookkeeping(model: nn.Module) -> bool:
    """True when every module holding trainable parameters is an `nn.Linear`, each used
    once per forward pass on 2-D input (checked again at every step)."""
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if not params:
            continue
        if type(module) is not nn.Linear or not all(p.requires_grad for p in params):
            return False
    return any(isinstance(m, nn.Linear) for m in model.modules())


class BookkeepingClipper:
    """Writes Σ_i c_i ∇ℓ_i into `p.grad` for every parameter of `model`.

    Requires `supports_bookkeeping(model)` (else ValueError). Usage per physical batch::

        clipper.start()                       # before the forward pass
        loss_per_row = criterion_none(model(x), y)
        clipper.backward(loss_per_row)        # sets p.grad

    `per_sample_norms` holds the unclipped norms of the last batch (debugging only: they
    are not private).
    """

    def __init__(self, model: nn.Module, *, max_grad_norm: float) -> None:
        if not supports_bookkeeping(model):
            raise ValueError("book-keeping clipping needs a model made only of trainable nn.Linear layers")
        if not max_grad_norm > 0:
            raise ValueError("max_grad_norm must be > 0")
        self.max_grad_norm = float(max_grad_norm)
        self._layers = [m for m in model.modules() if type(m) is nn.Linear]
        self._inputs: dict[nn.Linear, torch.Tensor] = {}
        self._outputs: dict[nn.Linear, torch.Tensor] = {}
        self._handles = [layer.register_forward_hook(self._capture) for layer in self._layers]
        self.per_sample_norms: torch.Tensor | None = None

    def _capture(self, layer: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not (layer.training and torch.is_grad_enabled()):
            return
        if layer in self._outputs:
            raise RuntimeError("a linear layer ran twice in one forward pass (tied weights are not supported)")
        (activation,) = inputs
        if activation.dim() != 2:
            raise RuntimeError(f"book-keeping clipping needs 2-D inputs, got shape {tuple(activation.shape)}")
        self._inputs[layer] = activation.detach()
        self._outputs[layer] = output

    def start(self) -> None:
        """Forget the previous batch; call before each forward pass."""
        self._inputs.clear()
        self._outputs.clear()

    def backward(self, loss_per_sample: torch.Tensor) -> None:
        """Set `p.grad` to the clipped per-sample gradient sum for this batch.

        `loss_per_sample` has one entry per row (reduction "none"); every layer must
        have run in training mode since `start()`.
        """
        if len(self._outputs) != len(self._layers):
            raise RuntimeError("forward pass did not go through every linear layer since start()")
        outputs = [self._outputs[layer] for layer in self._layers]
        # Gradients with respect to the layer outputs only: autograd then skips every
        # weight-gradient product, which is the work the clipped sum below replaces.
        grads = torch.autograd.grad(loss_per_sample.sum(), outputs)
        squared = torch.zeros(loss_per_sample.shape[0], device=loss_per_sample.device, dtype=grads[0].dtype)
        for layer, g in zip(self._layers, grads):
            a = self._inputs[layer]
            a2 = torch.linalg.vecdot(a, a)
            if layer.bias is not None:
                a2 += 1.0  # the bias: ‖g‖² more, as if a had an extra coordinate 1
            squared.add_(torch.linalg.vecdot(g, g) * a2)  # ‖g aᵀ‖² = ‖g‖²‖a‖²
        norms = squared.sqrt_()
        self.per_sample_norms = norms
        coef = (self.max_grad_norm / (norms + _STABILITY)).clamp_(max=1.0).unsqueeze(1)
        for layer, g in zip(self._layers, grads):
            scaled = g * coef
            layer.weight.grad = torch.mm(scaled.t(), self._inputs[layer])
            if layer.bias is not None:
                layer.bias.grad = scaled.sum(dim=0)
        self.start()

    def remove(self) -> None:
        """Detach from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.start()
