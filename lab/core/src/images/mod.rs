//! Offline images built from Debian packages (mmdebstrap + import through the engine API).
