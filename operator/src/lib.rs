//! hrl-operator (work in progress)
