"""pytest against the package staged in $PYVITCPP_STAGE (scripts/asan_tests.sh): that copy goes
first on sys.path, and an editable install's import redirect (scikit-build-core puts a finder in
front of sys.path) is taken out so it cannot hand back the installed, unsanitized modules."""
import os
import sys

stage = os.environ["PYVITCPP_STAGE"]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                    and "ScikitBuild" not in type(f).__name__]
sys.path.insert(0, stage)
# Child interpreters the tests start (run_child puts the package's parent first on PYTHONPATH)
# load the staged package too, unless an editable install redirects them (they then run the
# plain modules, still under the preloaded runtime).
import pyvitcpp  # noqa: E402

assert os.path.dirname(os.path.dirname(os.path.abspath(pyvitcpp.__file__))) == os.path.abspath(stage), pyvitcpp.__file__
import pytest  # noqa: E402

sys.exit(pytest.main(sys.argv[1:]))
