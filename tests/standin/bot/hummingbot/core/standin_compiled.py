"""Frames of the real client's compiled (Cython) modules, as its tracebacks print them: the .pyx
path, the qualified name, and no source line (no .pyx is shipped). The stand-in's function gets
that path and name, and globals without a module name or loader, so linecache finds no source."""

import types


def compiled(function, pyx: str, name: str):
    scope = {k: v for k, v in function.__globals__.items() if k not in ("__name__", "__loader__", "__spec__")}
    code = function.__code__.replace(co_filename=pyx, co_name=name)
    return types.FunctionType(code, scope, name, function.__defaults__, function.__closure__)
