"""Node agents: they pull the desired state from the controller, apply it to their node (L4:
BPF maps and a BGP speaker; L7: HAProxy), run the health checks they are given, and report."""
