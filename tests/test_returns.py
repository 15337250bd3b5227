"""Multi-channel GAE against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from rewardjax import returns


def _arr(x):
  return jnp.asarray(x, jnp.float32)


def test_gae_hand_computed_single_channel():
  # Three steps in one env, λ = 0.5, γ = 0.9, no episode end.
  r = _arr([1.0, 0.0, 2.0])[:, None, None]
  v = _arr([0.5, 1.0, 1.5])[:, None, None]
  v_next = _arr([1.0, 1.5, 3.0])[:, None, None]
  f = jnp.zeros((3, 1), bool)
  adv, tgt = returns.multichannel_gae(r, v, v_next, v_next, f, f, [0.9], [True], 0.5)
  d = [1.0 + 0.9 * 1.0 - 0.5, 0.0 + 0.9 * 1.5 - 1.0, 2.0 + 0.9 * 3.0 - 1.5]
  a2 = d[2]
  a1 = d[1] + 0.45 * a2
  a0 = d[0] + 0.45 * a1
  np.testing.assert_allclose(adv[:, 0, 0], [a0, a1, a2], rtol=1e-6)
  np.testing.assert_allclose(tgt[:, 0, 0], np.array([a0, a1, a2]) + [0.5, 1.0, 1.5], rtol=1e-6)


def test_terminated_truncated_and_non_episodic_channels():
  # Step 0 ends an episode. Channel 0 episodic, channel 1 non-episodic (γ 0.5).
  r = _arr([[1.0, 1.0], [2.0, 2.0]])[:, None, :]
  v = _arr([[0.0, 0.0], [7.0, 7.0]])[:, None, :]       # V(s_1) = V(reset obs)
  v_true = _arr([[10.0, 10.0], [4.0, 4.0]])[:, None, :]     # V(final obs)
  v_seq = _arr([[7.0, 7.0], [4.0, 4.0]])[:, None, :]        # V(reset obs), then bootstrap
  gam, lam = [0.9, 0.5], 1.0

  # Terminated: the episodic channel bootstraps with 0 and cuts the recursion.
  term = jnp.array([[True], [False]])
  trunc = jnp.array([[False], [False]])
  adv, _ = returns.multichannel_gae(r, v, v_true, v_seq, term, trunc, gam, [True, False], lam)
  a1 = [2.0 + 0.9 * 4.0 - 7.0, 2.0 + 0.5 * 4.0 - 7.0]
  np.testing.assert_allclose(adv[1, 0], a1, rtol=1e-6)
  np.testing.assert_allclose(adv[0, 0, 0], 1.0, rtol=1e-6)
  # Non-episodic: bootstraps through the reset observation and keeps the recursion.
  np.testing.assert_allclose(adv[0, 0, 1], 1.0 + 0.5 * 7.0 + 0.5 * a1[1], rtol=1e-6)

  # Truncated: the episodic channel bootstraps from V(final obs), recursion cut.
  term = jnp.array([[False], [False]])
  trunc = jnp.array([[True], [False]])
  adv, _ = returns.multichannel_gae(r, v, v_true, v_seq, term, trunc, gam, [True, False], lam)
  np.testing.assert_allclose(adv[0, 0, 0], 1.0 + 0.9 * 10.0, rtol=1e-6)
  np.testing.assert_allclose(adv[0, 0, 1], 1.0 + 0.5 * 7.0 + 0.5 * a1[1], rtol=1e-6)


def test_gae_of_one_step_and_shape_errors():
  # T = 1: δ alone (nothing after the last step).
  r, v, v_next = _arr([[2.0]]), _arr([[0.5]]), _arr([[1.0]])
  adv = returns.generalized_advantage_estimation(r, v, v_next, 0.9, jnp.ones((1, 1)), 0.95)
  np.testing.assert_allclose(adv, [[2.0 + 0.9 - 0.5]], rtol=1e-6)
  with pytest.raises(ValueError, match=r"generalized_advantage_estimation: shapes differ: "
                                       r"r_t \(3,\), v_tm1 \(2,\), v_t \(3,\), continue_t \(3,\)"):
    returns.generalized_advantage_estimation(jnp.zeros(3), jnp.zeros(2), jnp.zeros(3), 0.9,
                                             jnp.ones(3), 0.95)
