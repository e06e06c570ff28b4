from tests.engine.fixtures import make_engine, reset_flows, side

__all__ = ["make_engine", "reset_flows", "side"]
