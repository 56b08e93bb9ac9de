package server

// UncataloguedReason is the message of the log line for a registry error whose reason is not
// as catalogued; the tests fail on it.
const UncataloguedReason = uncataloguedReason
