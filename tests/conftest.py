import os

# Tests run on the CPU; keep XLA from grabbing every thread of a shared machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import rewardjax  # noqa: E402,F401  (sets the XLA scheduler flag before JAX starts)
