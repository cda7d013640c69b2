//! libmaru: the Maru client library.
