//! Binary encodings of the records kept in the store.
