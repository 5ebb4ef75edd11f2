/// The Python half of the WSGI glue: small classes whose behaviour PEP 3333 spells out in Python
/// terms (the empty wsgi.input, wsgi.file_wrapper) and the app loader; start_response, write(), wsgi.input and
/// wsgi.errors are implemented in Swift (`StartResponse`, `InputObject`, `ErrorsObject`). Compiled once per
/// worker into the module `_keel_wsgi`; the per-request path (environ, the call, the body) is Swift.
enum SupportModule {
    static let name = "_keel_wsgi"

    static let source = #"""
import sys, os, traceback, importlib, importlib.util


class EmptyInput:
    """wsgi.input of a request without a body: one per worker, stateless, so no object is made per request."""
    __slots__ = ()

    def read(self, size=-1):
        return b''

    def read1(self, size=-1):
        return b''

    def readline(self, size=-1):
        return b''

    def readlines(self, hint=-1):
        return []

    def readinto(self, buffer):
        return 0

    def readable(self):
        return True

    def __iter__(self):
        return iter(())


EMPTY_INPUT = EmptyInput()


class FileWrapper:
    """wsgi.file_wrapper: the worker sends a real file with sendfile; otherwise it is iterated in blocks."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, 'close'):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def sendable(self):
        """(fd, offset, length) when the wrapped object is a regular file at a known position, else None."""
        try:
            fd = self.filelike.fileno()
            offset = self.filelike.tell()
            import stat
            info = os.fstat(fd)
        except Exception:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return (fd, offset, max(info.st_size - offset, 0))


def format_exception(error):
    return ''.join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip('\n')


class LoadError(Exception):
    """The app cannot be loaded: `summary` is the one-line reason, `details` the traceback (or empty)."""

    def __init__(self, summary, details=''):
        super().__init__(summary)
        self.summary = summary
        self.details = details


def load(module_name, file_path, callable_name, flag):
    """Imports the app module (or runs the file) and returns its WSGI callable."""
    try:
        if file_path is not None:
            directory = os.path.dirname(os.path.abspath(file_path))
            if directory not in sys.path:
                sys.path.insert(0, directory)
            spec = importlib.util.spec_from_file_location('__keel_wsgi_file__', file_path)
            module = importlib.util.module_from_spec(spec)
            sys.modules['__keel_wsgi_file__'] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except BaseException as error:
        raise LoadError('%s: cannot import the app: %s' % (flag, ''.join(
            traceback.format_exception_only(type(error), error)).strip()), format_exception(error))
    where = ("module '%s'" % module_name) if file_path is None else ("file %s" % file_path)
    if not hasattr(module, callable_name):
        raise LoadError("%s: %s has no attribute '%s' (give the callable as MODULE:CALLABLE, or --callable)"
                        % (flag, where, callable_name))
    app = getattr(module, callable_name)
    if not callable(app):
        raise LoadError("%s: '%s' in %s is a %s, not a callable app"
                        % (flag, callable_name, where, type(app).__name__))
    return app


def module_files():
    """The source files of the loaded modules, for --py-autoreload (modules without a .py file are skipped)."""
    files = []
    for module in list(sys.modules.values()):
        path = getattr(module, '__file__', None)
        if isinstance(path, str) and path.endswith('.py'):
            files.append(path)
    return files


def arm_stack_dump(signum):
    """--harakiri's report: faulthandler dumps every thread's stack from a signal handler, without the GIL, so a
    thread stuck holding it still shows where (the worker raises `signum` on its main thread before exiting)."""
    import faulthandler
    faulthandler.register(signum, file=sys.stderr, all_threads=True, chain=False)


def forget_bytecode(path):
    """Removes a changed file's cached bytecode: a .pyc is checked by the source's mtime in whole seconds and its
    size, so an edit within the same second that keeps the size would otherwise load the old code."""
    try:
        os.unlink(importlib.util.cache_from_source(path))
    except (OSError, NotImplementedError, ValueError):
        pass


def set_environment(pairs):
    """--env: the worker set them in the C environment; os.environ was copied when the interpreter started."""
    os.environ.update(pairs)


def prepare(directory, pythonpath):
    """sys.path as gunicorn and uWSGI set it: --pythonpath entries first, then the app's directory."""
    for entry in reversed(pythonpath):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if directory not in sys.path:
        sys.path.insert(len(pythonpath), directory)
    extra = os.environ.get('PYTHONPATH')
    if extra:
        for entry in extra.split(os.pathsep):
            if entry and entry not in sys.path:
                sys.path.append(entry)
"""#
}
