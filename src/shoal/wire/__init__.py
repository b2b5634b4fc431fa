"""What travels between the controller and the agents, and how an L4 node reads it."""
