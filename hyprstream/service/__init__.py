"""Layer 6: the service that wires the ports together."""

from hyprstream.service._service import Hyprstream, IngestResult, ServiceOptions

__all__ = ["Hyprstream", "IngestResult", "ServiceOptions"]
