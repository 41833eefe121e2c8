//! hrl-playground (work in progress)
