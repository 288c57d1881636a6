"""pytest setup for rqshm: the module is imported from the source tree
(python/), the library from RQ_LIBRARY (ctest sets it to the build tree's
librq.so), the C peer from RQ_PEER."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
