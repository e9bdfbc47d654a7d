//! Billing decisions from Stripe's side: verifying webhook signatures, and turning Stripe
//! events into state transitions of subscriptions, invoices and dunning. Pure: the caller
//! passes `now`, the stored state and the event; the result says what to store.

pub mod dunning;
pub mod events;
pub mod meter_resend;
pub mod reconcile;
pub mod signature;
