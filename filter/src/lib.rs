//! hrl-filter (work in progress)
