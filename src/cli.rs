//! (lead is writing this)
