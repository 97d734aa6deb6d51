"""What can go wrong with a request inside the engine, independent of HTTP."""


class EngineError(Exception):
    """Base of engine errors; the message is safe to show to a client."""


class RequestRejected(EngineError):
    """The worker refused the request as given (prompt too long, template failure): the client's to fix."""


class EngineFailure(EngineError):
    """The engine failed while running the request (step error, worker died)."""


class ModelUnavailable(EngineError):
    """No replica of the model can take requests (failed to load, or all down)."""


class Overloaded(EngineError):
    """The model's running and waiting slots are all taken: the client should retry later."""


class TooLarge(EngineError):
    """The request needs more sequences at once than the model can ever hold: retrying cannot help."""


class ModelExists(EngineError):
    """A model with this id is already served."""


class Reloading(EngineError):
    """The model was unloaded for idleness and is loading again; `idle_reload: refuse` says not to wait for it."""
