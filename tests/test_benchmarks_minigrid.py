"""``benchmarks/minigrid.py``'s ``--arms`` and ``--env-kwargs`` parsing (no training)."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
minigrid = pytest.importorskip("minigrid")   # benchmarks/minigrid.py (imports only rewardjax)


def test_the_three_named_arms_keep_their_specs():
  assert minigrid.parse_arms(["ppo", "ppo+counts", "ppo+rnd"]) == {
      "ppo": "extrinsic", "ppo+counts": "extrinsic+counts", "ppo+rnd": "extrinsic+rnd"}


def test_ppo_plus_a_spec_adds_its_terms_to_extrinsic_and_options_stay_in_the_spec():
  arms = minigrid.parse_arms(["ppo+counts@coef=0.05", "ppo+counts@coef=0.1,episodic=true+rnd"])
  assert arms == {"ppo+counts@coef=0.05": "extrinsic+counts@coef=0.05",
                  "ppo+counts@coef=0.1,episodic=true+rnd":
                      "extrinsic+counts@coef=0.1,episodic=true+rnd"}


def test_name_equals_spec_names_a_whole_spec_in_the_given_order():
  arms = minigrid.parse_arms(["e3b=extrinsic+e3b@coef=0.1", "ppo", "plain=extrinsic"])
  assert list(arms.items()) == [("e3b", "extrinsic+e3b@coef=0.1"), ("ppo", "extrinsic"),
                                ("plain", "extrinsic")]


@pytest.mark.parametrize("items, match", [
    (["counts"], "neither"),
    (["extrinsic+counts@coef=0.1"], "neither"),
    (["=extrinsic"], "empty name or spec"),
    (["a="], "empty name or spec"),
    (["ppo+"], "empty name or spec"),
    (["ppo", "ppo=extrinsic+counts"], "given twice"),
])
def test_bad_arms_are_refused_naming_the_item(items, match):
  with pytest.raises(ValueError, match=match):
    minigrid.parse_arms(items)


def test_main_refuses_a_bad_arm_or_env_kwarg_before_building_anything(capsys):
  with pytest.raises(SystemExit):
    minigrid.main(["--arms", "counts"])
  assert "'counts' is neither" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    minigrid.main(["--env-kwargs", "max_steps"])
  assert "expected name=value" in capsys.readouterr().err


def test_main_refuses_a_bad_spec_or_episode_limit_before_compiling(capsys):
  pytest.importorskip("xminigrid")
  with pytest.raises(SystemExit):
    minigrid.main(["--tasks", "MiniGrid-Empty-5x5", "--arms", "ppo", "ppo+nonsense"])
  assert "nonsense" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    minigrid.main(["--tasks", "MiniGrid-Empty-5x5", "--env-kwargs", "max_steps=0"])
  assert "max_steps must be a positive integer" in capsys.readouterr().err


def test_the_table_row_names_the_task_variant_and_the_arm_spec():
  res = {"task": "MiniGrid-Empty-16x16", "env_kwargs": {"max_steps": 100}, "arm": "c",
         "rewards": "extrinsic+counts@coef=0.1", "steps": 1000, "seeds": 2,
         "first_goal_steps": [640, None], "goal_in_final_updates": [True, False],
         "final_mean_return": [0.5, 0.0], "steps_per_s": 10.0, "wall_s": 3.0, "nonfinite": False}
  cells = [c.strip() for c in minigrid.table_row(res).split("|")[1:-1]]
  assert cells[:5] == ["MiniGrid-Empty-16x16 (max_steps 100)", "c: `extrinsic+counts@coef=0.1`",
                       "1,000", "1/2", "1/2"]
  assert cells[5:8] == ["—"] * 3 and cells[8] == "0.250"
