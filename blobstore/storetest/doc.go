// Package storetest is the conformance suite every blobstore backend
// passes: one Suite, a constructor per backend (restic's
// internal/backend/test shape). Each exported Test method of Suite runs
// as a subtest; a backend gets the whole suite by supplying NewStore.
//
// Invariants: the suite never skips a check because a backend lacks a
// feature (a server without conditional operations fails), every test
// works in a store of its own (NewStore is called per test), and data
// sizes stay small enough for a 2-core CI machine.
//
// It must never: talk to a network address itself (backends decide
// where they connect), or leave objects behind that NewStore's cleanup
// does not remove.
package storetest
