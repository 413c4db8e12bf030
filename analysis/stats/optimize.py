"""L-BFGS over a batch of independent problems at once.

Curve fits start from a grid of starting points and are refitted on every bootstrap
resample: hundreds to thousands of small problems (a few parameters, a few dozen
points). One scipy L-BFGS-B call costs milliseconds of Python overhead per problem,
whatever its size; here every iteration runs as a few numpy operations over the whole
batch, each problem with its own curvature history, step and convergence test.

Nocedal, J. (1980). Updating quasi-Newton matrices with limited storage. Mathematics
of Computation 35, 773-782; Liu, D. C. & Nocedal, J. (1989). On the limited memory
BFGS method for large scale optimization. Mathematical Programming 45, 503-528.
The search direction is the two-loop recursion (Nocedal & Wright (2006), Numerical
Optimization, Algorithm 7.4) with initial scaling gamma = s'y / y'y; the step is found
by backtracking from 1 until the Armijo condition f(x + t d) <= f(x) + c1 t g'd holds,
and a pair (s, y) is kept only when s'y > 0 (curvature), as in Algorithm 7.5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class BatchResult:
    """x : (B, k) minimisers; f : (B,) values; iterations : (B,) used;
    converged : (B,) the gradient or relative-change test was met (otherwise the
    iteration limit was hit or no step decreased f)."""

    x: np.ndarray
    f: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def lbfgs(
    fun: Objective,
    x0: np.ndarray,
    *,
    memory: int = 10,
    max_iter: int = 2000,
    gtol: float = 1e-9,
    ftol: float = 1e-12,
    c1: float = 1e-4,
    max_halvings: int = 60,
) -> BatchResult:
    """Minimise B independent problems by L-BFGS (module docstring).

    Parameters
    ----------
    fun : ``fun(x, rows) -> (f, g)``: values (m,) and gradients (m, k) of problems
        `rows` (indices into the batch) at x (m, k).
    x0 : (B, k) starting points.
    gtol : stop when max |g| <= gtol * max(1, |f|).
    ftol : stop when an accepted step lowers f by at most ftol * max(1, |f|).

    Returns
    -------
    BatchResult.
    """
    x = np.array(x0, dtype=np.float64)
    n_batch, k = x.shape
    rows = np.arange(n_batch)
    f, g = fun(x, rows)
    S = np.zeros((n_batch, memory, k))
    Y = np.zeros((n_batch, memory, k))
    rho = np.zeros((n_batch, memory))
    gamma = np.ones(n_batch)
    fresh = np.ones(n_batch, bool)  # no curvature pair yet: scale the first step
    iterations = np.zeros(n_batch, np.int64)
    converged = np.abs(g).max(axis=1) <= gtol * np.maximum(1, np.abs(f))
    active = ~converged & np.isfinite(f)

    for it in range(max_iter):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        gi = g[idx]
        # Two-loop recursion, newest pair first (the ring buffer slot of iteration j is j % memory).
        q = gi.copy()
        alphas = np.zeros((len(idx), memory))
        order = [(it - 1 - j) % memory for j in range(min(it, memory))]
        for slot in order:
            alphas[:, slot] = rho[idx, slot] * np.einsum("bk,bk->b", S[idx, slot], q)
            q -= alphas[:, slot, None] * Y[idx, slot]
        r = gamma[idx, None] * q
        for slot in reversed(order):
            beta = rho[idx, slot] * np.einsum("bk,bk->b", Y[idx, slot], r)
            r += S[idx, slot] * (alphas[:, slot] - beta)[:, None]
        d = -r
        slope = np.einsum("bk,bk->b", gi, d)
        bad = ~(slope < 0) | ~np.isfinite(slope)
        if bad.any():  # lost descent: restart from steepest descent
            d[bad] = -gi[bad]
            rho[idx[bad]] = 0.0
            fresh[idx[bad]] = True
            slope[bad] = -np.einsum("bk,bk->b", gi[bad], gi[bad])
        step = np.where(fresh[idx], np.minimum(1.0, 1.0 / np.maximum(np.abs(gi).sum(axis=1), 1e-300)), 1.0)

        f_new = np.full(len(idx), np.nan)
        g_new = np.zeros_like(gi)
        searching = np.arange(len(idx))
        for _ in range(max_halvings):
            trial = x[idx[searching]] + step[searching, None] * d[searching]
            ft, gt = fun(trial, idx[searching])
            ok = np.isfinite(ft) & (ft <= f[idx[searching]] + c1 * step[searching] * slope[searching])
            f_new[searching[ok]] = ft[ok]
            g_new[searching[ok]] = gt[ok]
            searching = searching[~ok]
            if len(searching) == 0:
                break
            step[searching] *= 0.5
        failed = np.isnan(f_new)
        done_rows = idx[failed]
        active[done_rows] = False  # no decrease along d: at a minimum to working precision

        moved = ~failed
        rows_moved = idx[moved]
        s = step[moved, None] * d[moved]
        y = g_new[moved] - gi[moved]
        sy = np.einsum("bk,bk->b", s, y)
        yy = np.einsum("bk,bk->b", y, y)
        slot = it % memory
        keep_pair = sy > 1e-12 * np.sqrt(np.einsum("bk,bk->b", s, s) * yy)
        S[rows_moved, slot] = s
        Y[rows_moved, slot] = y
        rho[rows_moved, slot] = np.where(keep_pair, 1.0 / np.where(keep_pair, sy, 1.0), 0.0)
        gamma[rows_moved] = np.where(keep_pair, sy / np.where(keep_pair, yy, 1.0), gamma[rows_moved])
        fresh[rows_moved] &= ~keep_pair
        # Rows that did not move this iteration get an empty slot.
        rho[done_rows, slot] = 0.0

        decrease = f[rows_moved] - f_new[moved]
        x[rows_moved] += s
        f[rows_moved] = f_new[moved]
        g[rows_moved] = g_new[moved]
        iterations[rows_moved] += 1
        scale = np.maximum(1, np.abs(f_new[moved]))
        finished = (np.abs(g_new[moved]).max(axis=1) <= gtol * scale) | (decrease <= ftol * scale)
        converged[rows_moved[finished]] = True
        active[rows_moved[finished]] = False
    return BatchResult(x, f, iterations, converged)
