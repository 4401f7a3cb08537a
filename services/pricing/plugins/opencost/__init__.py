"""`opencost`: Kubernetes costs from an OpenCost allocation API."""
