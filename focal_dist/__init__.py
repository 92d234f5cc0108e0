"""focal_dist: focal losses, distributed class weights and a distributed training loop.

Importing the package does not import TensorFlow; import `focal_dist.losses` and friends.
"""

__version__ = "0.2.0"
