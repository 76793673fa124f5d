"""Operating the daemon: Prometheus metrics, the status HTTP endpoint, and `ygg top`'s view."""
