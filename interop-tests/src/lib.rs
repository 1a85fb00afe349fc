//! Harness that runs real JS peers (from the pinned npm packages in `js/`) for live tests.
