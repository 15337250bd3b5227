"""Q-learning targets and value mappings against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from rewardjax import q_targets
from rewardjax import value_mapping as vm
from rewardjax.agents import dqn
from rewardjax.agents import pqn

F, T = False, True


def n_step(r, term, trunc, v, gamma=0.5, episodic=True):
  """The n-step target of the first step of one [n] sequence, one channel."""
  discount, cont = q_targets.episode_discounts(jnp.array(term), jnp.array(trunc), (gamma,),
                                               (episodic,))
  r = jnp.array(r, jnp.float32)[:, None]
  v = jnp.array(v, jnp.float32)[:, None]
  return float(q_targets.n_step_target(r, discount, v, cont)[0])


R, V = [1.0, 2.0, 3.0], [10.0, 20.0, 40.0]


def test_n_step_no_episode_end():
  # 1 + .5·2 + .25·3 + .125·40
  assert n_step(R, [F, F, F], [F, F, F], V) == pytest.approx(1 + 1 + 0.75 + 5)


def test_n_step_terminated_bootstraps_zero_and_stops():
  # Step 1 terminates: 1 + .5·2 (nothing after, no bootstrap).
  assert n_step(R, [F, T, F], [F, F, F], V) == pytest.approx(2.0)


def test_n_step_truncated_bootstraps_from_true_final_value():
  # Step 1 is cut by a time limit: 1 + .5·(2 + .5·V[1]) — V[1] is the value of the
  # true final observation of step 1; the reward of the next episode is not used.
  assert n_step(R, [F, F, F], [F, T, F], V) == pytest.approx(1 + 0.5 * (2 + 10))


def test_n_step_terminal_at_last_step():
  assert n_step(R, [F, F, T], [F, F, F], V) == pytest.approx(1 + 1 + 0.75)
  assert n_step(R, [F, F, F], [F, F, T], V) == pytest.approx(1 + 1 + 0.75 + 5)


def test_non_episodic_channel_ignores_episode_ends():
  assert n_step(R, [F, T, F], [F, F, F], V, episodic=False) == pytest.approx(7.75)
  assert n_step(R, [T, F, F], [F, T, F], V, episodic=False) == pytest.approx(7.75)


def test_one_step_target():
  assert n_step([1.0], [F], [F], [4.0], gamma=0.9) == pytest.approx(1 + 0.9 * 4)
  assert n_step([1.0], [T], [F], [4.0], gamma=0.9) == pytest.approx(1.0)
  assert n_step([1.0], [F], [T], [4.0], gamma=0.9) == pytest.approx(1 + 0.9 * 4)


def test_q_lambda_returns_hand_computed():
  r = jnp.array([1.0, 2.0])
  d = jnp.array([0.5, 0.5])
  v = jnp.array([10.0, 20.0])
  g = q_targets.lambda_returns(r, d, v, 0.5)
  # G1 = 2 + .5·20 = 12; G0 = 1 + .5·(.5·10 + .5·12) = 6.5
  np.testing.assert_allclose(g, [6.5, 12.0])
  # λ = 0 is one-step Q-learning, λ = 1 the Monte-Carlo return with bootstrap.
  np.testing.assert_allclose(q_targets.lambda_returns(r, d, v, 0.0), [6.0, 12.0])
  np.testing.assert_allclose(q_targets.lambda_returns(r, d, v, 1.0), [7.0, 12.0])


def test_pqn_targets_terminated_vs_truncated_per_channel():
  """PQN's targets as the agent computes them, over a [T=3, N=1, C=2] rollout.

  Channel 0 is episodic (γ = .5), channel 1 non-episodic (γ = .9); λ = .5.
  """
  r = jnp.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])[:, None]
  v_true = jnp.array([10.0, 20.0, 40.0])[:, None, None] * jnp.ones(2)   # Q(true next obs)
  v_seq = jnp.array([10.0, 99.0, 40.0])[:, None, None] * jnp.ones(2)    # Q(reset obs at 1)
  gammas = jnp.array([0.5, 0.9])

  def targets(term, trunc, mappings=vm.per_channel("identity", 2)):
    out = pqn.pqn_targets(r, v_true, v_seq, jnp.array(term)[:, None], jnp.array(trunc)[:, None],
                          gammas, 0.5, (True, False), mappings)
    return np.asarray(out)[:, 0]

  # Channel 1 (non-episodic) runs on through both kinds of end and bootstraps from
  # the rollout's next observation (99 at step 1):
  # G2 = 3 + .9·40 = 39; G1 = 2 + .9·(.5·99 + .5·39) = 64.1; G0 = 1 + .9·(.5·10 + .5·64.1)
  ch1 = [34.345, 64.1, 39.0]
  # Channel 0, terminated at 1: G2 = 3 + .5·40 = 23; G1 = 2; G0 = 1 + .5·(.5·10 + .5·2) = 4
  np.testing.assert_allclose(targets([F, T, F], [F, F, F]), np.c_[[4.0, 2.0, 23.0], ch1],
                             rtol=1e-6)
  # Channel 0, truncated at 1: G1 = 2 + .5·20 = 12 (true final obs, not the reset obs's 99)
  np.testing.assert_allclose(targets([F, F, F], [F, T, F]), np.c_[[6.5, 12.0, 23.0], ch1],
                             rtol=1e-6)
  # No end: channel 0 runs on too: G1 = 2 + .5·(.5·20 + .5·23) = 12.75; G0 = 1 + .5·(5 + 6.375)
  np.testing.assert_allclose(targets([F, F, F], [F, F, F])[:, 0], [6.6875, 12.75, 23.0],
                             rtol=1e-6)
  # Targets are returned in each channel's mapped space.
  log = vm.logarithmic()
  np.testing.assert_allclose(
      targets([F, T, F], [F, F, F], (vm.identity(), log)),
      np.c_[[4.0, 2.0, 23.0], np.asarray(log.forward(jnp.array(ch1)))], rtol=1e-5)


def test_episode_discounts_per_channel():
  d, c = q_targets.episode_discounts(jnp.array([T, F, F]), jnp.array([F, T, F]),
                                     (0.9, 0.5), (True, False))
  np.testing.assert_allclose(d, [[0.0, 0.5], [0.9, 0.5], [0.9, 0.5]])
  np.testing.assert_allclose(c, [[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]])


def test_double_dqn_selects_with_online_evaluates_with_target():
  q_target = jnp.array([[1.0, 5.0, 2.0]])[..., None]     # [B=1, A=3, C=1]
  q_online = jnp.array([[4.0, 0.0, 9.0]])[..., None]
  # Online argmax is action 2; the target network's value there is 2 (not its max, 5,
  # and not the online value, 9).
  assert float(q_targets.double_q_bootstrap(q_target, q_online, (1.0,))[0, 0]) == 2.0
  assert float(q_targets.q_learning_bootstrap(q_target, (1.0,))[0, 0]) == 5.0


def test_decomposed_greedy_action_uses_coefficients():
  q = jnp.array([[1.0, 0.0], [0.0, 3.0]])                # [A=2, C=2]
  assert int(q_targets.greedy_action(q, (1.0, 0.1))) == 0  # 1.0 vs 0.3
  assert int(q_targets.greedy_action(q, (1.0, 1.0))) == 1  # 1.0 vs 3.0
  # Every head bootstraps at the shared action.
  np.testing.assert_allclose(q_targets.q_learning_bootstrap(q, (1.0, 0.1)), [1.0, 0.0])


def test_td_losses():
  q = jnp.array([0.0, 0.0, 0.0])
  y = jnp.array([0.5, 2.0, -3.0])
  np.testing.assert_allclose(q_targets.td_loss(q, y, "mse"), [0.125, 2.0, 4.5])
  np.testing.assert_allclose(q_targets.td_loss(q, y, "huber"), [0.125, 1.5, 2.5])
  with pytest.raises(ValueError, match="huber"):
    q_targets.td_loss(q, y, "l1")


def test_shape_checks():
  with pytest.raises(ValueError, match="shapes differ"):
    q_targets.lambda_returns(jnp.zeros(3), jnp.zeros(3), jnp.zeros(4), 0.5)
  with pytest.raises(ValueError, match="select"):
    q_targets.select(jnp.zeros((4, 3, 1)), jnp.zeros((5,), jnp.int32))
  with pytest.raises(ValueError, match="channels"):
    q_targets.greedy_action(jnp.zeros((4, 3, 2)), (1.0,))
  with pytest.raises(ValueError, match="shapes differ"):
    q_targets.double_q_bootstrap(jnp.zeros((2, 3, 1)), jnp.zeros((2, 4, 1)), (1.0,))


# ------------------------------------------------------------------ value mappings


def test_log_mapping_round_trips_and_is_odd_monotone():
  m = vm.logarithmic()
  x = jnp.concatenate([jnp.linspace(-200.0, 200.0, 401), jnp.array([0.0, 1e-4, -1e-4])])
  np.testing.assert_allclose(m.inverse(m.forward(x)), x, rtol=1e-5, atol=1e-6)
  y = jnp.linspace(-5.0, 5.0, 101)
  np.testing.assert_allclose(m.forward(m.inverse(y)), y, rtol=1e-5, atol=1e-6)
  assert float(m.forward(jnp.float32(0.0))) == 0.0
  fx = np.asarray(m.forward(jnp.linspace(-50, 50, 101)))
  assert np.all(np.diff(fx) > 0)
  np.testing.assert_allclose(m.forward(-x), -m.forward(x), atol=1e-6)
  # van Seijen et al.'s f(x) = c·ln(x + δ) − c·ln δ for x >= 0.
  c, d = 0.5, 0.02
  np.testing.assert_allclose(m.forward(jnp.float32(3.0)), c * np.log(3.0 + d) - c * np.log(d),
                             rtol=1e-6)


def test_identity_mapping_and_registry():
  m = vm.get("identity")
  x = jnp.array([-1.0, 2.0])
  np.testing.assert_array_equal(m.forward(x), x)
  np.testing.assert_array_equal(m.inverse(x), x)
  with pytest.raises(ValueError, match="unknown value mapping 'sqrt'"):
    vm.get("sqrt")
  with pytest.raises(ValueError, match="c must be > 0"):
    vm.logarithmic(c=0.0)


def test_per_channel_mappings():
  ms = vm.per_channel(("identity", "log"), 2)
  x = jnp.array([[3.0, 3.0]])
  out = vm.apply(ms, x)
  assert float(out[0, 0]) == 3.0
  assert float(out[0, 1]) == pytest.approx(float(vm.logarithmic().forward(jnp.float32(3.0))))
  np.testing.assert_allclose(vm.apply(ms, out, inverse=True), x, rtol=1e-6)
  assert len(vm.per_channel(("log",), 3)) == 3
  with pytest.raises(ValueError, match="one per reward channel"):
    vm.per_channel(("log", "identity"), 3)


# ------------------------------------------------------------ defaults and named errors


def test_defaults_huber_loss_and_monte_carlo_lambda():
  q, y = jnp.array([1.0, -2.0, 0.5]), jnp.array([3.0, -2.5, 0.0])
  # Errors q − y = [−2, .5, .5]: Huber ½e² inside |e| ≤ 1, |e| − ½ outside.
  np.testing.assert_allclose(q_targets.td_loss(q, y), [1.5, 0.125, 0.125])
  np.testing.assert_allclose(q_targets.td_loss(q, y, "mse"), [2.0, 0.125, 0.125])
  # λ defaults to 1: the n-step return 1 + .5·(2 + .5·20) = 7.
  g = q_targets.lambda_returns(jnp.array([1.0, 2.0]), jnp.array([0.5, 0.5]), jnp.array([10.0, 20.0]))
  np.testing.assert_allclose(g, [7.0, 12.0])


@pytest.mark.parametrize("call, message", [
    (lambda: q_targets.td_loss(jnp.zeros(3), jnp.zeros(4)),
     "td_loss: shapes differ: q_tm1 (3,), target_tm1 (4,)"),
    (lambda: q_targets.td_loss(jnp.zeros(4), jnp.zeros(3)),
     "td_loss: shapes differ: q_tm1 (4,), target_tm1 (3,)"),
    (lambda: q_targets.lambda_returns(jnp.zeros(3), jnp.zeros(2), jnp.zeros(3), 0.5),
     "lambda_returns: shapes differ: r_t (3,), discount_t (2,), v_t (3,), lambda_t (3,)"),
    (lambda: q_targets.episode_discounts(jnp.zeros(3, bool), jnp.zeros(2, bool), (0.9,), (True,)),
     "episode_discounts: shapes differ: terminated_t (3,), truncated_t (2,)"),
    (lambda: q_targets.episode_discounts(jnp.zeros(2, bool), jnp.zeros(3, bool), (0.9,), (True,)),
     "episode_discounts: shapes differ: terminated_t (2,), truncated_t (3,)"),
    (lambda: q_targets.episode_discounts(jnp.zeros(2, bool), jnp.zeros(2, bool), (0.9, 0.5),
                                         (True,)),
     "episode_discounts: 2 gammas but 1 episodic flags"),
    (lambda: q_targets.double_q_bootstrap(jnp.zeros((2, 3, 1)), jnp.zeros((2, 4, 1)), (1.0,)),
     "double_q_bootstrap: shapes differ: q_target_t (2, 3, 1), q_selector_t (2, 4, 1)"),
    (lambda: q_targets.greedy_action(jnp.zeros((4, 3, 2)), (1.0,)),
     "greedy_action: q_t has 2 channels, coefs 1"),
])
def test_shape_errors_name_the_function_and_the_shapes(call, message):
  with pytest.raises(ValueError) as e:
    call()
  assert str(e.value) == message


def test_value_mapping_names_identity_fast_path_and_argument_checks():
  assert vm.get("identity").name == "identity" and vm.get("log").name == "log"
  x = jnp.array([[3.0, -2.0]])
  assert vm.apply(vm.per_channel("identity", 2), x) is x       # nothing to map
  log = vm.logarithmic()
  np.testing.assert_allclose(vm.apply((log, log), x), log.forward(x), rtol=1e-6)
  for delta in (0.0, -1.0, float("inf"), "1"):
    with pytest.raises(ValueError, match=f"logarithmic: delta must be > 0, got {delta!r}"):
      vm.logarithmic(delta=delta)


# ------------------------------------------- the agents' losses, called as they call them


def _lookup(params, obs):
  """A Q "network" that looks its values up: ``obs [..., 1]`` holds a state index."""
  return params[obs[..., 0].astype(jnp.int32)]


def _log_np(x, c=0.5, delta=0.02):
  return np.sign(x) * c * np.log1p(np.abs(x) / delta)


def _log_inv_np(y, c=0.5, delta=0.02):
  return np.sign(y) * delta * np.expm1(np.abs(y) / c)


def _one_step_batch(reward):
  """One 1-step sequence from state 0 (action 0) to state 1, no episode end."""
  return dqn.Stored(obs=jnp.array([[[0.0]]]), action=jnp.array([[0]]),
                    reward=jnp.array([[reward]], jnp.float32), next_obs=jnp.array([[[1.0]]]),
                    terminated=jnp.zeros((1, 1), bool), truncated=jnp.zeros((1, 1), bool))


def test_q_loss_selects_greedy_actions_in_regular_space_under_log_mappings():
  """With log-mapped heads the greedy action maximises Σ_c coef_c·f⁻¹(q̃_c), which here
  differs from the argmax of the mapped sum Σ_c coef_c·q̃_c, for the target network
  (DQN) and for the online network (Double DQN)."""
  q_on = np.zeros((2, 2, 2), np.float32)
  q_tg = np.zeros((2, 2, 2), np.float32)
  q_on[0, 0] = [0.5, -0.3]                   # the taken value (mapped)
  q_on[1] = [[3.0, 0.0], [2.0, 2.0]]         # mapped sums 3 < 4; regular 8.05 > 2.14: a* = 0
  q_tg[1] = [[1.8, 0.0], [-1.0, 2.5]]        # mapped sums 1.8 > 1.5; regular 0.71 < 2.82: a* = 1
  assert np.argmax(_log_inv_np(q_on[1]).sum(-1)) != np.argmax(q_on[1].sum(-1))
  assert np.argmax(_log_inv_np(q_tg[1]).sum(-1)) != np.argmax(q_tg[1].sum(-1))
  reward, gammas = np.array([1.0, -0.5]), np.array([0.9, 0.5])
  log = vm.logarithmic()
  for double, a_star in ((False, 1), (True, 0)):
    loss, metrics = dqn.q_loss(_lookup, jnp.asarray(q_on), jnp.asarray(q_tg),
                               _one_step_batch(reward), coefs=(1.0, 1.0), gammas=(0.9, 0.5),
                               episodic=(True, True), mappings=(log, log), double_dqn=double,
                               loss="mse")
    target = reward + gammas * _log_inv_np(q_tg[1, a_star].astype(np.float64))
    want = (0.5 * (q_on[0, 0] - _log_np(target))**2).sum()
    np.testing.assert_allclose(loss, want, rtol=1e-5, err_msg=f"double_dqn={double}")
    np.testing.assert_allclose(metrics["loss"], loss, rtol=0)
    np.testing.assert_allclose(metrics["q_mean"], q_on[0, 0].mean(), rtol=1e-6)


def test_q_loss_default_is_the_huber_loss():
  q_on = np.zeros((2, 2, 1), np.float32)
  q_on[0, 0] = [4.0]
  q_tg = np.zeros((2, 2, 1), np.float32)
  q_tg[1] = [[1.0], [2.0]]
  batch = _one_step_batch([0.5])
  loss, metrics = dqn.q_loss(_lookup, jnp.asarray(q_on), jnp.asarray(q_tg), batch,
                             coefs=(1.0,), gammas=(0.5,), episodic=(True,),
                             mappings=(vm.identity(),), double_dqn=False)
  # G = .5 + .5·2 = 1.5; error 2.5 > 1: Huber gives 2.5 − .5 = 2 (½·error² would be 3.125).
  np.testing.assert_allclose(loss, 2.0, rtol=1e-6)
  np.testing.assert_allclose(metrics["loss"], 2.0, rtol=1e-6)


def test_pqn_loss_reports_its_loss():
  q = jnp.array([[[0.0, 1.0], [2.0, -1.0]]])
  loss, metrics = pqn.pqn_loss(_lookup, q, jnp.zeros((2, 1)), jnp.array([1, 0]),
                               jnp.array([[2.5, 0.0], [0.0, 1.0]]), "mse")
  # q_taken = [[2, −1], [0, 1]], errors [[−.5, −1], [0, 0]]: Σ_c mean_b ½·err² = .0625 + .25.
  np.testing.assert_allclose(loss, 0.3125, rtol=1e-6)
  np.testing.assert_allclose(metrics["loss"], 0.3125, rtol=1e-6)
