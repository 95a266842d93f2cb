import os

# Tests read the project's own log lines; TensorFlow's C++ start-up chatter is noise here.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
