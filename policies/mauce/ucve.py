"""Upper Confidence Variable Elimination (UCVE, Bargiacchi et al., ICML 2018).

UCVE returns the exact maximiser of the MAUCE objective

    z(a) = sum_e mu_e(a_e) + sqrt( c * sum_e var_e(a_e) ),    c = 0.5 * log(t A)

(``var_e = r_e^2 / n_e``) without enumerating joint actions. Because the square
root couples all factors, plain variable elimination does not apply: every table
entry holds a **set of 2-vectors** ``(mean, variance_sum)``, one per partial
joint action that may still be optimal, each with a back-pointer (its "tag").

Eliminating agent ``i`` (greedy order, :meth:`CoordinationGraph.elimination_order`):
for every assignment of ``i``'s neighbours and every action of ``i``, the sets of
all tables touching ``i`` are cross-summed; the union over ``i``'s actions is
pruned and becomes one entry of a new table over the neighbours. When a
connected component is eliminated its table has no agents left (one set); the
final sets of all components are cross-summed, pruned, and the vector maximising
``mean + sqrt(c * var)`` is traced back through the pointers to a joint action.

Pruning. Let ``[x_l, x_u]`` bound the variance the rest of the graph (every
table not touching ``i``) can still add: ``x_u`` / ``x_l`` is the sum over those
tables of their largest / smallest variance entry. A completion adds the same
``(w_m, w_v)`` to every vector of one entry, with ``w_v`` in ``[x_l, x_u]``.

* ``pruning="reference"`` is the paper's rule: drop 2-D Pareto-dominated vectors,
  then drop ``v`` when ``v.m + sqrt(c (v.v + x_u)) <= max_v' v'.m + sqrt(c (v'.v + x_l))``
  (``v'`` another vector of the same entry).
* ``pruning="envelope"`` (default) keeps exactly the vectors that are best for
  some ``w_v`` in ``[x_l, x_u]``: each vector is a curve
  ``g_v(w) = v.m + sqrt(c (v.v + w))``, two curves cross at most once, and a
  kinetic sweep over ``w`` collects the upper envelope. A vector off the
  envelope is beaten, for every possible completion, by another vector of its
  entry, so the result is still exact; the rule is never weaker than the
  paper's (whatever the paper drops is off the envelope) and usually keeps one
  or two vectors per entry, which is what makes 40 and 100 agents cheap.

All sets of one table are stored as padded ``(entries, K)`` arrays (mean
``-inf`` marks padding), so one elimination is a fixed number of vectorised
numpy operations whatever the number of entries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from marl_envs.bandits.graph import CoordinationGraph

PRUNING_MODES = ("envelope", "reference")
ENGINES = ("auto", "python", "numpy")
#: "auto" uses the python engine when no elimination has more than this many
#: (neighbour assignment, action) pairs
PYTHON_ENGINE_MAX_ENTRIES = 4096


class UCVE:
    """UCVE solver compiled for one coordination graph.

    ``solve(means, variances, c)`` returns ``(joint_action, mean, variance)`` of
    the maximiser of ``mean + sqrt(c * variance)``. ``means`` / ``variances``
    are per-factor arrays (flat or in factor shape), variances finite and >= 0.
    After a call, ``last_max_set_size`` is the largest set kept in any entry.
    """

    def __init__(
        self, graph: CoordinationGraph, pruning: str = "envelope", engine: str = "auto"
    ) -> None:
        if pruning not in PRUNING_MODES:
            raise ValueError(f"unknown pruning {pruning!r}; allowed: {list(PRUNING_MODES)}")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; allowed: {list(ENGINES)}")
        self.graph = graph
        self.pruning = pruning
        self.plan = graph.ve_plan
        self.last_max_set_size = 0
        sizes = graph.action_sizes
        widest = max(
            (
                int(np.prod([sizes[j] for j in st.scope])) * sizes[st.agent]
                for st in self.plan.steps
            ),
            default=1,
        )
        if engine == "auto":
            engine = "python" if widest <= PYTHON_ENGINE_MAX_ENTRIES else "numpy"
        #: ``"python"`` (lists of floats; fastest for small tables) or ``"numpy"`` (padded arrays)
        self.engine = engine
        self._py_plan = self._compile_py() if engine == "python" else None
        width = int(graph.factor_sizes.max()) if graph.n_factors else 1
        self._valid = np.arange(width)[None, :] < graph.factor_sizes[:, None]

    # ------------------------------------------------------- python engine
    def _compile_py(self) -> list[tuple]:
        """Per step: agent, original-factor inputs, set-table inputs, scope strides.

        For every (entry of the new scope, action of the agent) the plan stores the
        entry index each input is read at, so a solve only indexes Python lists.
        """
        sizes = self.graph.action_sizes
        n_factors = self.graph.n_factors
        live: dict[int, tuple[int, ...]] = dict(enumerate(self.graph.factors))
        plan = []
        for st in self.plan.steps:
            axes = list(st.scope) + [st.agent]
            grid = np.indices(tuple(sizes[j] for j in axes)).reshape(len(axes), -1)
            orig, sets = [], []
            for t in st.inputs:
                scope = live.pop(t)
                strides = np.cumprod((tuple(sizes[j] for j in scope[1:]) + (1,))[::-1])[::-1]
                flat = sum(
                    grid[axes.index(j)] * int(k) for j, k in zip(scope, strides, strict=True)
                )
                idx = flat.reshape(-1, sizes[st.agent]).tolist()
                (orig if t < n_factors else sets).append((t, idx))
            strides = np.cumprod((tuple(sizes[j] for j in st.scope[1:]) + (1,))[::-1])[::-1]
            scope_strides = tuple(zip(st.scope, strides.tolist()[: len(st.scope)], strict=True))
            n_ent = int(np.prod([sizes[j] for j in st.scope])) if st.scope else 1
            plan.append(
                (st.agent, bool(st.inputs), orig, sets, scope_strides, n_ent, sizes[st.agent])
            )
            live[st.out_id] = st.scope
        return plan

    def _solve_py(self, mpad: np.ndarray, vpad: np.ndarray, c: float) -> tuple:
        """The python engine on padded ``(n_factors, width)`` mean / variance arrays."""
        sc = math.sqrt(c)
        envelope = self.pruning == "envelope"
        n_factors = self.graph.n_factors
        valid = self._valid
        M, V = mpad.tolist(), vpad.tolist()
        vmax = dict(enumerate(np.where(valid, vpad, -np.inf).max(axis=1).tolist()))
        vmin = dict(enumerate(np.where(valid, vpad, np.inf).min(axis=1).tolist()))
        tot_max = sum(vmax.values())
        tot_min = sum(vmin.values())
        sets: dict[int, list] = {}
        backs: dict[int, list] = {}
        finals: list[int] = []
        max_set = 1
        next_id = n_factors
        sqrt = math.sqrt
        for _agent, has_inputs, orig, set_in, scope, n_ent, n_act in self._py_plan:
            out = next_id
            next_id += 1
            if not has_inputs:
                continue
            xu, xl = tot_max, tot_min
            for t, _ in orig:
                xu -= vmax.pop(t)
                xl -= vmin.pop(t)
            in_sets = []
            for t, idx in set_in:
                xu -= vmax.pop(t)
                xl -= vmin.pop(t)
                in_sets.append((sets.pop(t), idx))
            xu = xu if xu > 0.0 else 0.0
            xl = xl if xl > 0.0 else 0.0
            new_sets, new_back = [], []
            hi, lo = -math.inf, math.inf
            for x in range(n_ent):
                cand = []
                for a in range(n_act):
                    bm = bv = 0.0
                    for t, idx in orig:
                        k = idx[x][a]
                        bm += M[t][k]
                        bv += V[t][k]
                    if not in_sets:
                        cand.append((bm, bv, a, ()))
                    elif len(in_sets) == 1:
                        s_x = in_sets[0][0][in_sets[0][1][x][a]]
                        for k, (m, v) in enumerate(s_x):
                            cand.append((bm + m, bv + v, a, (k,)))
                    else:
                        combos = [(bm, bv, ())]
                        for s_in, idx in in_sets:
                            s_x = s_in[idx[x][a]]
                            combos = [
                                (m + m0, v + v0, p + (k,))
                                for m, v, p in combos
                                for k, (m0, v0) in enumerate(s_x)
                            ]
                        cand.extend((m, v, a, p) for m, v, p in combos)
                if len(cand) > 1:
                    cand = (
                        _py_envelope(cand, sc, xl, xu, sqrt)
                        if envelope
                        else _py_reference(cand, sc, xl, xu)
                    )
                kept_sets, kept_back = [], []
                for m, v, a, p in cand:
                    kept_sets.append((m, v))
                    kept_back.append((a, p))
                    if v > hi:
                        hi = v
                    if v < lo:
                        lo = v
                new_sets.append(kept_sets)
                new_back.append(kept_back)
                if len(cand) > max_set:
                    max_set = len(cand)
            sets[out], backs[out] = new_sets, new_back
            vmax[out], vmin[out] = hi, lo
            tot_max, tot_min = xu + hi, xl + lo
            if not scope:
                finals.append(out)
        merges = []
        while len(finals) > 1:
            a_id, b_id = finals.pop(), finals.pop()
            sa, sb = sets.pop(a_id)[0], sets.pop(b_id)[0]
            tot_max -= vmax.pop(a_id) + vmax.pop(b_id)
            tot_min -= vmin.pop(a_id) + vmin.pop(b_id)
            cand = [
                (ma + mb, va + vb, 0, (ka, kb))
                for ka, (ma, va) in enumerate(sa)
                for kb, (mb, vb) in enumerate(sb)
            ]
            if len(cand) > 1:
                xl, xu = max(tot_min, 0.0), max(tot_max, 0.0)
                cand = (
                    _py_envelope(cand, sc, xl, xu, sqrt)
                    if envelope
                    else _py_reference(cand, sc, xl, xu)
                )
            out = next_id
            next_id += 1
            sets[out] = [[(m, v) for m, v, _, _ in cand]]
            backs[out] = [[(0, p) for _, _, _, p in cand]]
            vmax[out] = max(v for _, v, _, _ in cand)
            vmin[out] = min(v for _, v, _, _ in cand)
            tot_max += vmax[out]
            tot_min += vmin[out]
            max_set = max(max_set, len(cand))
            merges.append((out, a_id, b_id))
            finals.append(out)
        self.last_max_set_size = max_set
        action = np.zeros(self.graph.n_agents, dtype=np.int64)
        if not finals:
            return action, 0.0, 0.0
        root = finals[0]
        final = sets[root][0]
        best = max(range(len(final)), key=lambda k: final[k][0] + sc * sqrt(final[k][1]))
        sel = {root: best}
        for out, a_id, b_id in reversed(merges):
            sel[a_id], sel[b_id] = backs[out][0][sel[out]][1]
        act = [0] * self.graph.n_agents
        out = next_id - len(merges)
        for agent, has_inputs, _orig, set_in, scope, _n, _a in reversed(self._py_plan):
            out -= 1
            if not has_inputs:
                continue
            x = 0
            for j, stride in scope:
                x += act[j] * stride
            a, p = backs[out][x][sel.get(out, 0)]
            act[agent] = a
            for (t, _), k in zip(set_in, p, strict=True):
                sel[t] = k
        action[:] = act
        m_best, v_best = final[best]
        return action, m_best, v_best

    # --------------------------------------------------------------- pruning
    def _prune(
        self, m: np.ndarray, v: np.ndarray, sc: float, xl: float, xu: float
    ) -> np.ndarray:
        """Keep-mask over candidates ``(E, C)`` (padding has ``m = -inf``)."""
        if self.pruning == "envelope":
            return _envelope(m, v, sc, xl, xu)
        return _reference(m, v, sc, xl, xu)

    # ----------------------------------------------------------------- solve
    def solve(
        self, means: Sequence[np.ndarray], variances: Sequence[np.ndarray], c: float
    ) -> tuple[np.ndarray, float, float]:
        """Exact ``argmax_a mean(a) + sqrt(c * variance(a))``: ``(action, mean, variance)``."""
        if c < 0:
            raise ValueError(f"exploration coefficient c must be >= 0, got {c}")
        if self.engine == "python":
            return self._solve_py(self._pad(means), self._pad(variances), c)
        return self._solve_np(means, variances, c)

    def solve_padded(self, means: np.ndarray, variances: np.ndarray, c: float) -> tuple:
        """:meth:`solve` on padded ``(n_factors, max_local)`` arrays (factor e in row e)."""
        if c < 0:
            raise ValueError(f"exploration coefficient c must be >= 0, got {c}")
        if self.engine == "python":
            return self._solve_py(means, variances, c)
        sizes = self.graph.factor_sizes
        return self._solve_np(
            [means[e, :k] for e, k in enumerate(sizes)],
            [variances[e, :k] for e, k in enumerate(sizes)],
            c,
        )

    def _pad(self, tables: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros(self._valid.shape)
        for e, t in enumerate(tables):
            out[e, : self.graph.factor_sizes[e]] = np.ravel(t)
        return out

    def _solve_np(
        self, means: Sequence[np.ndarray], variances: Sequence[np.ndarray], c: float
    ) -> tuple[np.ndarray, float, float]:
        g = self.graph
        sc = float(np.sqrt(c))
        sizes = g.action_sizes
        # tables: id -> (m, v) arrays of shape (*scope, K)
        tm: dict[int, np.ndarray] = {}
        tv: dict[int, np.ndarray] = {}
        vmax: dict[int, float] = {}
        vmin: dict[int, float] = {}
        for e, shape in enumerate(g.factor_shapes):
            mm = np.asarray(means[e], dtype=np.float64).reshape(shape + (1,))
            vv = np.asarray(variances[e], dtype=np.float64).reshape(shape + (1,))
            tm[e], tv[e] = mm, vv
            vmax[e], vmin[e] = float(vv.max()), float(vv.min())
        tot_max = sum(vmax.values())
        tot_min = sum(vmin.values())
        records: list[tuple | None] = []
        finals: list[int] = []
        max_set = 1
        for st in self.plan.steps:
            if not st.inputs:
                records.append(None)
                continue
            k = len(st.inputs)
            ks = [tm[t].shape[-1] for t in st.inputs]
            acc_m = acc_v = None
            for j, (t, perm, shape) in enumerate(zip(st.inputs, st.perms, st.shapes, strict=True)):
                p = perm + (len(perm),)
                kshape = shape + (1,) * j + (ks[j],) + (1,) * (k - 1 - j)
                xm = tm.pop(t).transpose(p).reshape(kshape)
                xv = tv.pop(t).transpose(p).reshape(kshape)
                acc_m = xm if acc_m is None else acc_m + xm
                acc_v = xv if acc_v is None else acc_v + xv
            scope_shape = tuple(sizes[j] for j in st.scope)
            full = scope_shape + (sizes[st.agent],) + tuple(ks)
            if acc_m.shape != full:
                acc_m = np.broadcast_to(acc_m, full)
            if acc_v.shape != full:
                acc_v = np.broadcast_to(acc_v, full)
            n_entries = int(np.prod(scope_shape)) if scope_shape else 1
            cm = acc_m.reshape(n_entries, -1)
            cv = acc_v.reshape(n_entries, -1)
            in_max = sum(vmax.pop(t) for t in st.inputs)
            in_min = sum(vmin.pop(t) for t in st.inputs)
            xu = max(tot_max - in_max, 0.0)
            xl = max(tot_min - in_min, 0.0)
            idx, nm, nv = _pack(cm, cv, self._prune(cm, cv, sc, xl, xu))
            max_set = max(max_set, nm.shape[1])
            out = st.out_id
            tm[out] = nm.reshape(scope_shape + (nm.shape[1],))
            tv[out] = nv.reshape(scope_shape + (nv.shape[1],))
            valid = np.isfinite(nm)
            vmax[out] = float(nv[valid].max())
            vmin[out] = float(nv[valid].min())
            tot_max = xu + vmax[out]
            tot_min = xl + vmin[out]
            records.append((idx, scope_shape, (sizes[st.agent], *ks)))
            if not st.scope:
                finals.append(out)
        # cross-sum the components' final sets (the square root couples them)
        sel: dict[int, int] = {}
        merges: list[tuple[int, int, int, int, np.ndarray]] = []
        next_id = self.plan.n_tables
        while len(finals) > 1:
            a, b = finals.pop(), finals.pop()
            kb = tm[b].shape[-1]
            ma, mb = tm.pop(a)[None, :, None], tm.pop(b)[None, None, :]
            va, vb = tv.pop(a)[None, :, None], tv.pop(b)[None, None, :]
            cm = (ma + mb).reshape(1, -1)
            cv = (va + vb).reshape(1, -1)
            tot_max -= vmax.pop(a) + vmax.pop(b)
            tot_min -= vmin.pop(a) + vmin.pop(b)
            xu, xl = max(tot_max, 0.0), max(tot_min, 0.0)
            idx, nm, nv = _pack(cm, cv, self._prune(cm, cv, sc, xl, xu))
            max_set = max(max_set, nm.shape[1])
            tm[next_id], tv[next_id] = nm[0], nv[0]
            valid = np.isfinite(nm)
            vmax[next_id], vmin[next_id] = float(nv[valid].max()), float(nv[valid].min())
            tot_max += vmax[next_id]
            tot_min += vmin[next_id]
            merges.append((next_id, a, b, kb, idx[0]))
            finals.append(next_id)
            next_id += 1
        self.last_max_set_size = max_set
        action = np.zeros(g.n_agents, dtype=np.int64)
        if not finals:  # no factor at all
            return action, 0.0, 0.0
        root = finals[0]
        fm, fv = tm[root].reshape(-1), tv[root].reshape(-1)
        score = fm + sc * np.sqrt(fv)
        best = int(np.argmax(score))
        sel[root] = best
        for out, a, b, kb, idx in reversed(merges):
            sel[a], sel[b] = divmod(int(idx[sel[out]]), kb)
        for st, rec in zip(reversed(self.plan.steps), reversed(records), strict=True):
            if rec is None:
                continue
            idx, scope_shape, cand_shape = rec
            entry = (
                int(np.ravel_multi_index(tuple(action[j] for j in st.scope), scope_shape))
                if st.scope
                else 0
            )
            flat = int(idx[entry, sel.get(st.out_id, 0)])
            parts = np.unravel_index(flat, cand_shape)
            action[st.agent] = parts[0]
            for t, kk in zip(st.inputs, parts[1:], strict=True):
                sel[t] = int(kk)
        return action, float(fm[best]), float(fv[best])


def _pack(
    m: np.ndarray, v: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compact kept candidates to the left: ``(index (E, K'), means, variances)``."""
    counts = keep.sum(axis=1)
    k = int(counts.max())
    if keep.shape[1] == k and keep.all():
        idx = np.broadcast_to(np.arange(k), keep.shape)
        return idx, m, v
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    nm = np.take_along_axis(m, order, axis=1)
    nv = np.take_along_axis(v, order, axis=1)
    if (counts < k).any():
        pad = np.arange(k)[None, :] >= counts[:, None]
        nm = np.where(pad, -np.inf, nm)
        nv = np.where(pad, 0.0, nv)
    return order, nm, nv


def _envelope(m: np.ndarray, v: np.ndarray, sc: float, xl: float, xu: float) -> np.ndarray:
    """Vectors on the upper envelope of ``g(w) = m + sc*sqrt(v + w)`` over ``[xl, xu]``."""
    n_rows, n_cand = m.shape
    keep = np.zeros(m.shape, dtype=bool)
    rows = np.arange(n_rows)
    cur = np.argmax(m + sc * np.sqrt(v + xl), axis=1)
    keep[rows, cur] = True
    if n_cand == 1:
        return keep
    last = np.argmax(m + sc * np.sqrt(v + xu), axis=1)
    active = cur != last
    if not active.any() or sc == 0.0:
        return keep
    r = rows[active]
    cur = cur[active]
    w = np.full(r.size, xl)
    mr, vr = m[r], v[r]
    while r.size:
        mc = mr[np.arange(r.size), cur][:, None]
        vc = vr[np.arange(r.size), cur][:, None]
        big_d = vc - vr
        d = (mr - mc) / sc
        cand = (big_d > 0) & (d > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.where(big_d > d * d, (big_d - d * d) / (2 * d), 0.0)
            cross = root * root - vr
        cross = np.where(cand, np.maximum(cross, w[:, None]), np.inf)
        first = cross.min(axis=1)
        nxt = np.argmin(np.where(cross <= first[:, None], vr, np.inf), axis=1)
        go = first <= xu
        if not go.any():
            break
        keep[r[go], nxt[go]] = True
        r, cur, w, mr, vr = r[go], nxt[go], first[go], mr[go], vr[go]
    return keep


def _reference(m: np.ndarray, v: np.ndarray, sc: float, xl: float, xu: float) -> np.ndarray:
    """The paper's pruning: 2-D Pareto dominance, then the upper/lower bound test."""
    valid = np.isfinite(m)
    # Pareto: sort by mean desc (variance desc on ties); keep v strictly above all before
    o1 = np.argsort(-v, axis=1, kind="stable")
    o2 = np.argsort(-np.take_along_axis(m, o1, axis=1), axis=1, kind="stable")
    order = np.take_along_axis(o1, o2, axis=1)
    vs = np.take_along_axis(np.where(valid, v, -np.inf), order, axis=1)
    prev = np.maximum.accumulate(vs, axis=1)
    prev = np.concatenate([np.full((m.shape[0], 1), -np.inf), prev[:, :-1]], axis=1)
    pareto_sorted = vs > prev
    pareto = np.zeros_like(valid)
    np.put_along_axis(pareto, order, pareto_sorted, axis=1)
    pareto &= valid
    # bound pruning within each entry
    lower = np.where(pareto, m + sc * np.sqrt(v + xl), -np.inf)
    upper = m + sc * np.sqrt(v + xu)
    best = np.argmax(lower, axis=1)
    keep = pareto & (upper > lower.max(axis=1, keepdims=True))
    keep[np.arange(m.shape[0]), best] = True
    return keep


# ------------------------------------------------------------- python pruning
def _py_envelope(cand: list, sc: float, xl: float, xu: float, sqrt: Callable = math.sqrt) -> list:
    """:func:`_envelope` for one entry's candidate list ``[(m, v, a, ptr), ...]``."""
    best_l = best_u = 0
    gl_best = gu_best = -math.inf
    for k, x in enumerate(cand):
        m, v = x[0], x[1]
        gl = m + sc * sqrt(v + xl)
        if gl > gl_best:
            gl_best, best_l = gl, k
        gu = m + sc * sqrt(v + xu)
        if gu > gu_best:
            gu_best, best_u = gu, k
    if best_l == best_u or sc == 0.0:
        return [cand[best_l]]
    kept = [cand[best_l]]
    cur, w = best_l, xl
    while True:
        mc, vc = cand[cur][0], cand[cur][1]
        nxt, first = -1, math.inf
        for k, x in enumerate(cand):
            m, v = x[0], x[1]
            big_d = vc - v
            if big_d <= 0.0 or m <= mc:
                continue
            d = (m - mc) / sc
            root = (big_d - d * d) / (2.0 * d) if big_d > d * d else 0.0
            cross = root * root - v
            if cross < w:
                cross = w
            if cross < first or (cross == first and v < cand[nxt][1]):
                nxt, first = k, cross
        if nxt < 0 or first > xu:
            return kept
        kept.append(cand[nxt])
        cur, w = nxt, first


def _py_reference(cand: list, sc: float, xl: float, xu: float) -> list:
    """:func:`_reference` for one entry's candidate list."""
    order = sorted(cand, key=lambda x: (-x[0], -x[1]))
    pareto, top = [], -math.inf
    for x in order:
        if x[1] > top:
            pareto.append(x)
            top = x[1]
    sqrt = math.sqrt
    lower = [x[0] + sc * sqrt(x[1] + xl) for x in pareto]
    best = max(range(len(pareto)), key=lower.__getitem__)
    bound = lower[best]
    return [
        x for k, x in enumerate(pareto) if k == best or x[0] + sc * sqrt(x[1] + xu) > bound
    ]
