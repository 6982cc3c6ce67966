"""scpln Planning Hub."""

import os

__version__ = "0.1.0"

# The engine's matrix products are small (items x workcenters); a pool of BLAS threads that spin
# between them only takes a core from the rest of the process (on two cores, the database write).
# Set before numpy is first imported; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
