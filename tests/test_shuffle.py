"""rewardjax.shuffle: random orders for minibatches."""

import collections

import jax
import numpy as np

from rewardjax.shuffle import shuffle_order


def test_is_a_permutation_and_batched():
  order = np.asarray(shuffle_order(jax.random.PRNGKey(0), 5000))
  np.testing.assert_array_equal(np.sort(order), np.arange(5000))
  many = np.asarray(shuffle_order(jax.random.PRNGKey(1), 300, num=3))
  assert many.shape == (3, 300)
  for row in many:
    np.testing.assert_array_equal(np.sort(row), np.arange(300))
  assert len({tuple(r) for r in many}) == 3          # independent orders


def test_orders_are_uniform():
  # All 24 orders of 4 items, 24,000 draws: each about 1000 times (chi-square,
  # 23 degrees of freedom; 60 is far beyond the 0.9999 quantile ≈ 55).
  orders = np.asarray(shuffle_order(jax.random.PRNGKey(2), 4, num=24_000))
  counts = collections.Counter(map(tuple, orders))
  assert len(counts) == 24
  observed = np.array(list(counts.values()))
  chi2 = np.sum((observed - 1000.0) ** 2 / 1000.0)
  assert chi2 < 60, chi2
