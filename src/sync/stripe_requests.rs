//! Every request Driftlock sends to Stripe, built as data: the method, the path and the form
//! (or query) parameters in Stripe's bracketed encoding. Pure: the handlers and the worker that
//! send them stay thin, and the contract check (`tests/it/stripe_contract.rs`) validates every
//! shape [`every_shape`] lists against the parameter definitions of the official `stripe`
//! library at the pinned API version ([`super::stripe::STRIPE_API_VERSION`]).

use crate::{core::metering::period::stripe_event_time_ms, store::MeterEventRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

/// One request to Stripe's API: a form body for POST, a query string for GET.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StripeRequest {
    pub method: Method,
    pub path: String,
    pub params: Vec<(String, String)>,
}

impl StripeRequest {
    fn new(method: Method, path: impl Into<String>, params: Vec<(&str, String)>) -> Self {
        StripeRequest {
            method,
            path: path.into(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }
}

/// Who pays a checkout: the organization's Stripe customer when it has one, else an email
/// for Stripe to create the customer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payer {
    Customer(String),
    Email(String),
    Unknown,
}

/// What a subscription checkout needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub org_id: String,
    pub plan_id: String,
    pub price: String,
    /// The plan's metered overage price, when it has one.
    pub metered_price: Option<String>,
    /// The admin UI's address, where Stripe sends the customer back.
    pub return_url: String,
    /// Epoch seconds of the next 1st (UTC): Stripe's invoice periods are then calendar months.
    pub billing_cycle_anchor: i64,
    pub payer: Payer,
    /// The Stripe id of a promotion code to apply; without one the customer may type a code.
    pub promotion_code: Option<String>,
}

/// `POST /v1/checkout/sessions` for a subscription to a plan.
pub fn checkout_session(c: &Checkout) -> StripeRequest {
    let mut params = vec![
        ("mode", "subscription".to_string()),
        ("client_reference_id", c.org_id.clone()),
        ("success_url", format!("{}?checkout=success", c.return_url)),
        ("cancel_url", format!("{}?checkout=cancelled", c.return_url)),
        ("line_items[0][price]", c.price.clone()),
        ("line_items[0][quantity]", "1".to_string()),
        ("metadata[plan]", c.plan_id.clone()),
        ("metadata[organization_id]", c.org_id.clone()),
        (
            "subscription_data[metadata][organization_id]",
            c.org_id.clone(),
        ),
        // Stripe's invoice periods are then Driftlock's calendar months (UTC): the first
        // invoice is prorated up to the 1st, and each month's overage, stamped inside its
        // month, lands on that month's invoice.
        (
            "subscription_data[billing_cycle_anchor]",
            c.billing_cycle_anchor.to_string(),
        ),
    ];
    if let Some(metered) = &c.metered_price {
        // A metered price takes no quantity: usage comes from the Billing Meter.
        params.push(("line_items[1][price]", metered.clone()));
    }
    match &c.payer {
        Payer::Customer(id) => params.push(("customer", id.clone())),
        Payer::Email(email) => params.push(("customer_email", email.clone())),
        Payer::Unknown => {}
    }
    match &c.promotion_code {
        Some(id) => params.push(("discounts[0][promotion_code]", id.clone())),
        None => params.push(("allow_promotion_codes", "true".to_string())),
    }
    StripeRequest::new(Method::Post, "/v1/checkout/sessions", params)
}

/// `POST /v1/billing_portal/sessions` for a customer.
pub fn portal_session(customer: &str, return_url: &str) -> StripeRequest {
    StripeRequest::new(
        Method::Post,
        "/v1/billing_portal/sessions",
        vec![
            ("customer", customer.to_string()),
            ("return_url", return_url.to_string()),
        ],
    )
}

/// `GET /v1/prices/{id}`: a plan's price, to learn the product a coupon applies to.
pub fn price(price_id: &str) -> StripeRequest {
    StripeRequest::new(Method::Get, format!("/v1/prices/{price_id}"), vec![])
}

/// What a promotion's coupon is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub id: String,
    pub name: String,
    pub percent_off: u32,
    pub duration_months: u32,
    /// The Stripe products of the plans the promotion is for: the coupon discounts only
    /// those (never empty: a coupon without `applies_to` discounts everything).
    pub products: Vec<String>,
}

/// `POST /v1/coupons`: a repeating percentage discount limited to the plans' products.
pub fn coupon(c: &Coupon) -> StripeRequest {
    let mut request = StripeRequest::new(
        Method::Post,
        "/v1/coupons",
        vec![
            ("id", c.id.clone()),
            ("name", c.name.clone()),
            ("percent_off", c.percent_off.to_string()),
            ("duration", "repeating".to_string()),
            ("duration_in_months", c.duration_months.to_string()),
        ],
    );
    request.params.extend(
        c.products
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("applies_to[products][{i}]"), p.clone())),
    );
    request
}

/// The first API version at which a promotion code names its coupon as
/// `promotion[coupon]` (with `promotion[type]=coupon`) instead of `coupon`.
pub const PROMOTION_PARAM_SINCE: &str = "2025-09-30";

/// `POST /v1/promotion_codes` for `code` on `coupon_id`, in the form `api_version` takes
/// (versions are dates, so they compare as strings).
pub fn promotion_code(api_version: &str, coupon_id: &str, code: &str) -> StripeRequest {
    let coupon = if api_version >= PROMOTION_PARAM_SINCE {
        vec![
            ("promotion[type]", "coupon".to_string()),
            ("promotion[coupon]", coupon_id.to_string()),
        ]
    } else {
        vec![("coupon", coupon_id.to_string())]
    };
    let mut params = coupon;
    params.push(("code", code.to_string()));
    StripeRequest::new(Method::Post, "/v1/promotion_codes", params)
}

/// `GET /v1/promotion_codes` for the active promotion code typed as `code`.
pub fn active_promotion_code(code: &str) -> StripeRequest {
    StripeRequest::new(
        Method::Get,
        "/v1/promotion_codes",
        vec![("code", code.to_string()), ("active", "true".to_string())],
    )
}

/// `GET /v1/billing/meters`: one page of 100 meters, after the meter `after`.
pub fn meters(after: Option<&str>) -> StripeRequest {
    let mut params = vec![("limit", "100".to_string())];
    if let Some(after) = after {
        params.push(("starting_after", after.to_string()));
    }
    StripeRequest::new(Method::Get, "/v1/billing/meters", params)
}

/// `GET /v1/billing/meters/{id}/event_summaries`: a customer's total over
/// `[start_secs, end_secs)` (both on minute boundaries, as Stripe requires).
pub fn meter_event_summaries(
    meter_id: &str,
    customer: &str,
    start_secs: i64,
    end_secs: i64,
) -> StripeRequest {
    StripeRequest::new(
        Method::Get,
        format!("/v1/billing/meters/{meter_id}/event_summaries"),
        vec![
            ("customer", customer.to_string()),
            ("start_time", start_secs.to_string()),
            ("end_time", end_secs.to_string()),
        ],
    )
}

/// `POST /v1/billing/meter_events`: one batch sent at `now_ms` (its timestamp moved inside
/// Stripe's 35-day window if the batch waited longer).
pub fn meter_event(event_name: &str, row: &MeterEventRow, now_ms: i64) -> StripeRequest {
    let timestamp = stripe_event_time_ms(row.timestamp * 1000, now_ms) / 1000;
    StripeRequest::new(
        Method::Post,
        "/v1/billing/meter_events",
        vec![
            ("event_name", event_name.to_string()),
            ("payload[stripe_customer_id]", row.customer_id.clone()),
            ("payload[value]", row.value.to_string()),
            ("identifier", row.identifier.clone()),
            ("timestamp", timestamp.to_string()),
        ],
    )
}

/// One example of every request Driftlock can send, with every optional branch taken at
/// least once, for the contract check against Stripe's published parameter definitions.
pub fn every_shape(api_version: &str) -> Vec<StripeRequest> {
    let checkout = Checkout {
        org_id: "org_1".into(),
        plan_id: "standard".into(),
        price: "price_base".into(),
        metered_price: Some("price_metered".into()),
        return_url: "https://driftlock.example/admin/".into(),
        billing_cycle_anchor: 1_893_456_000,
        payer: Payer::Customer("cus_1".into()),
        promotion_code: Some("promo_1".into()),
    };
    let plain = Checkout {
        metered_price: None,
        payer: Payer::Email("billing@example.com".into()),
        promotion_code: None,
        ..checkout.clone()
    };
    let anonymous = Checkout {
        payer: Payer::Unknown,
        ..plain.clone()
    };
    let row = MeterEventRow {
        id: 1,
        org_id: "org_1".into(),
        customer_id: "cus_1".into(),
        value: 42,
        identifier: "dl-meter-1".into(),
        timestamp: 1_893_456_000,
        status: crate::store::MeterStatus::Pending,
        attempts: 0,
        last_error: None,
        next_attempt_at_ms: 0,
        correction: false,
        unclear_since_ms: None,
    };
    vec![
        checkout_session(&checkout),
        checkout_session(&plain),
        checkout_session(&anonymous),
        portal_session("cus_1", "https://driftlock.example/admin/"),
        price("price_base"),
        coupon(&Coupon {
            id: "driftlock-launch50".into(),
            name: "LAUNCH50".into(),
            percent_off: 50,
            duration_months: 3,
            products: vec!["prod_a".into(), "prod_b".into()],
        }),
        promotion_code(api_version, "driftlock-launch50", "LAUNCH50"),
        active_promotion_code("LAUNCH50"),
        meters(None),
        meters(Some("mtr_1")),
        meter_event_summaries("mtr_1", "cus_1", 0, 1_893_456_000),
        meter_event("driftlock_detections", &row, 1_893_456_000_000),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(r: &StripeRequest) -> Vec<&str> {
        r.params.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_promotion_code_names_its_coupon_the_way_the_api_version_expects() {
        let old = promotion_code("2024-06-20", "c", "CODE");
        assert_eq!(keys(&old), ["coupon", "code"]);
        let new = promotion_code("2025-09-30.clover", "c", "CODE");
        assert_eq!(keys(&new), ["promotion[type]", "promotion[coupon]", "code"]);
    }

    #[test]
    fn a_coupon_lists_every_product_it_applies_to() {
        let r = coupon(&Coupon {
            id: "x".into(),
            name: "X".into(),
            percent_off: 10,
            duration_months: 1,
            products: vec!["prod_a".into(), "prod_b".into()],
        });
        assert!(r
            .params
            .contains(&("applies_to[products][1]".into(), "prod_b".into())));
    }

    #[test]
    fn a_checkout_offers_codes_only_when_none_is_applied() {
        for r in every_shape("2024-06-20")
            .iter()
            .filter(|r| r.path == "/v1/checkout/sessions")
        {
            let k = keys(r);
            assert_ne!(
                k.contains(&"allow_promotion_codes"),
                k.contains(&"discounts[0][promotion_code]"),
                "{k:?}"
            );
        }
    }
}
