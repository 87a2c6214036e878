//! The four analytics endpoints, computed from the per-campaign daily counters
//! so that all of them agree with each other: campaign analytics and the
//! overview are sums of daily rows (plus the pre-window history when the
//! range reaches before the window), steps split a campaign's totals over its
//! sequence steps and A/B variants.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::data::{Counters, Store};
use super::util::midnight_ms;

/// An analytics date range. Both ends are instants (date-only values are UTC
/// midnight); a day belongs to the range when its midnight lies
/// within `[start, end]`, so `end_date=D` includes day D.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DateRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl DateRange {
    pub(crate) fn contains(&self, date: NaiveDate) -> bool {
        let t = midnight_ms(date);
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }

    pub(crate) fn contains_instant(&self, t: i64) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }

    /// Whether activity from before the daily window counts: it is dated the
    /// day before the window's first day.
    fn includes_history(&self, window_start: NaiveDate) -> bool {
        window_start.pred_opt().is_some_and(|d| self.contains(d))
    }
}

/// Splits `total` over `shares` (which sum to 1): floors, remainder to the first.
fn distribute(total: u64, shares: &[f64]) -> Vec<u64> {
    let mut parts: Vec<u64> = shares.iter().map(|s| (total as f64 * s).floor() as u64).collect();
    let used: u64 = parts.iter().sum();
    if let Some(first) = parts.first_mut() {
        *first += total.saturating_sub(used);
    }
    parts
}

impl Store {
    /// Sum of campaign `c`'s activity in `range`.
    pub(crate) fn campaign_totals(&self, c: usize, range: &DateRange) -> Counters {
        let camp = &self.campaigns[c];
        let mut total = Counters::default();
        if range.includes_history(self.window_start) {
            total += camp.history;
        }
        for (date, day) in &camp.daily {
            if range.contains(*date) {
                total += *day;
            }
        }
        total
    }

    /// One item of `GET /campaigns/analytics`.
    pub(crate) fn campaign_analytics(&self, c: usize, range: &DateRange) -> Value {
        let camp = &self.campaigns[c];
        let t = self.campaign_totals(c, range);
        let leads = self.leads_by_campaign[c].len() as u64;
        let [_, _, completed, bounced, unsubscribed, _] = camp.status_counts;
        let opportunities = t.unique_opportunities;
        json!({
            "campaign_name": camp.json.get("name").cloned().unwrap_or(Value::Null),
            "campaign_id": camp.id_str,
            "campaign_status": camp.status,
            "campaign_is_evergreen": camp.json.get("is_evergreen").and_then(Value::as_bool).unwrap_or(false),
            "leads_count": leads,
            "contacted_count": t.new_leads_contacted.min(leads),
            "emails_sent_count": t.sent,
            "new_leads_contacted_count": t.new_leads_contacted,
            "open_count": t.unique_opened,
            "open_count_unique": t.unique_opened,
            "open_count_unique_by_step": t.unique_opened + t.unique_opened / 7,
            "reply_count": t.replies,
            "reply_count_unique": t.unique_replies,
            "reply_count_unique_by_step": t.unique_replies + t.unique_replies / 9,
            "reply_count_automatic": t.replies_automatic,
            "reply_count_automatic_unique": t.unique_replies_automatic,
            "reply_count_automatic_unique_by_step": t.unique_replies_automatic + t.unique_replies_automatic / 5,
            "link_click_count": t.clicks,
            "link_click_count_unique": t.unique_clicks,
            "link_click_count_unique_by_step": t.unique_clicks + t.unique_clicks / 8,
            "bounced_count": bounced,
            "unsubscribed_count": unsubscribed,
            "completed_count": completed,
            "total_opportunities": opportunities,
            // A float in a `number` field.
            "total_opportunity_value": opportunities as f64 * camp.pl_value,
        })
    }

    /// `GET /campaigns/analytics/overview` over the campaigns `cs`.
    ///
    /// The CRM totals count the leads whose current interest status was set
    /// within the range: once per lead by default, or once per stage passed
    /// (interested, meeting booked, completed, won) with `expand_crm_events`.
    pub(crate) fn overview(&self, cs: &[usize], range: &DateRange, expand: bool) -> Value {
        let mut t = Counters::default();
        let (mut contacted, mut bounced, mut unsub, mut completed, mut value) = (0, 0, 0, 0, 0.0);
        let mut crm = [0u64; 4];
        for &c in cs {
            let camp = &self.campaigns[c];
            let ct = self.campaign_totals(c, range);
            let leads = self.leads_by_campaign[c].len() as u64;
            contacted += ct.new_leads_contacted.min(leads);
            value += ct.unique_opportunities as f64 * camp.pl_value;
            t += ct;
            bounced += camp.status_counts[3];
            unsub += camp.status_counts[4];
            completed += camp.status_counts[2];
            for &l in &camp.interest_leads {
                let lead = &self.leads[l as usize];
                let Some(at) = lead.interest_ms() else { continue };
                if !range.contains_instant(at) || !(1..=4).contains(&lead.interest) {
                    continue;
                }
                let stage = (lead.interest - 1) as usize;
                if expand {
                    for n in crm.iter_mut().take(stage + 1) {
                        *n += 1;
                    }
                } else {
                    crm[stage] += 1;
                }
            }
        }
        json!({
            "open_count": t.opened,
            "open_count_unique": t.unique_opened,
            "open_count_unique_by_step": t.unique_opened + t.unique_opened / 7,
            "link_click_count": t.clicks,
            "link_click_count_unique": t.unique_clicks,
            "link_click_count_unique_by_step": t.unique_clicks + t.unique_clicks / 8,
            "reply_count": t.replies,
            "reply_count_unique": t.unique_replies,
            "reply_count_unique_by_step": t.unique_replies + t.unique_replies / 9,
            "reply_count_automatic": t.replies_automatic,
            "reply_count_automatic_unique": t.unique_replies_automatic,
            "reply_count_automatic_unique_by_step": t.unique_replies_automatic + t.unique_replies_automatic / 5,
            "bounced_count": bounced,
            "unsubscribed_count": unsub,
            "completed_count": completed,
            "emails_sent_count": t.sent,
            "contacted_count": contacted,
            "new_leads_contacted_count": t.new_leads_contacted,
            "total_opportunities": t.unique_opportunities,
            "total_opportunity_value": value,
            "total_interested": crm[0],
            "total_meeting_booked": crm[1],
            "total_meeting_completed": crm[2],
            "total_closed": crm[3],
        })
    }

    /// `GET /campaigns/analytics/daily` over the campaigns `cs` (summed per
    /// date), ascending by date. Dates on which none of them has a row are absent.
    pub(crate) fn daily(&self, cs: &[usize], range: &DateRange) -> Vec<Value> {
        let mut days: BTreeMap<NaiveDate, Counters> = BTreeMap::new();
        for &c in cs {
            for (date, day) in &self.campaigns[c].daily {
                if range.contains(*date) {
                    *days.entry(*date).or_default() += *day;
                }
            }
        }
        days.iter().map(|(d, c)| c.day_json(*d)).collect()
    }

    /// `GET /campaigns/analytics/steps` over the campaigns `cs`, aggregated per
    /// (step, variant): steps from 0 ascending, then the null-step row.
    pub(crate) fn steps(&self, cs: &[usize], range: &DateRange, include_opps: bool) -> Vec<Value> {
        #[derive(Default, Clone, Copy)]
        struct Row {
            c: Counters,
            booked: u64,
            won: u64,
        }
        let mut rows: BTreeMap<(bool, u8, u8), Row> = BTreeMap::new();
        for &c in cs {
            let camp = &self.campaigns[c];
            if camp.status == 0 {
                continue;
            }
            let t = self.campaign_totals(c, range);
            let shares: Vec<f64> = camp.shares.iter().map(|s| s.2).collect();
            let split = |v: u64| distribute(v, &shares);
            let (mut booked, mut won) = (0, 0);
            for &l in &camp.interest_leads {
                let lead = &self.leads[l as usize];
                if lead.interest_ms().is_some_and(|at| range.contains_instant(at)) {
                    booked += u64::from(lead.interest == 2);
                    won += u64::from(lead.interest == 4);
                }
            }
            let cols = [
                split(t.sent),
                split(t.opened),
                split(t.unique_opened),
                split(t.replies),
                split(t.unique_replies),
                split(t.replies_automatic),
                split(t.unique_replies_automatic),
                split(t.clicks),
                split(t.unique_clicks),
                split(t.opportunities),
                split(t.unique_opportunities),
                split(booked),
                split(won),
            ];
            for (k, &(s, v, _)) in camp.shares.iter().enumerate() {
                let row = rows.entry((false, s, v)).or_default();
                row.c += Counters {
                    sent: cols[0][k],
                    contacted: 0,
                    new_leads_contacted: 0,
                    opened: cols[1][k],
                    unique_opened: cols[2][k],
                    replies: cols[3][k],
                    unique_replies: cols[4][k],
                    replies_automatic: cols[5][k],
                    unique_replies_automatic: cols[6][k],
                    clicks: cols[7][k],
                    unique_clicks: cols[8][k],
                    opportunities: cols[9][k],
                    unique_opportunities: cols[10][k],
                };
                row.booked += cols[11][k];
                row.won += cols[12][k];
            }
            if let Some((opened, replies)) = camp.null_step {
                // Events the API could not attribute to a step:
                // no sends, a few opens and replies.
                let row = rows.entry((true, 0, 0)).or_default();
                row.c.opened += opened;
                row.c.unique_opened += opened;
                row.c.replies += replies;
                row.c.unique_replies += replies;
            }
        }
        rows.iter()
            .map(|(&(null, s, v), r)| {
                let (step, variant) =
                    if null { (Value::Null, Value::Null) } else { (json!(s.to_string()), json!(v.to_string())) };
                let mut o = json!({
                    "step": step,
                    "variant": variant,
                    "sent": r.c.sent,
                    "opened": r.c.opened,
                    "unique_opened": r.c.unique_opened,
                    "replies": r.c.replies,
                    "unique_replies": r.c.unique_replies,
                    "replies_automatic": r.c.replies_automatic,
                    "unique_replies_automatic": r.c.unique_replies_automatic,
                    "clicks": r.c.clicks,
                    "unique_clicks": r.c.unique_clicks,
                });
                if include_opps {
                    o["opportunities"] = json!(r.c.opportunities);
                    o["unique_opportunities"] = json!(r.c.unique_opportunities);
                    o["meetings_booked"] = json!(r.booked);
                    o["won"] = json!(r.won);
                }
                o
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribute_keeps_the_total() {
        let parts = distribute(101, &[0.5, 0.3, 0.2]);
        assert_eq!(parts.iter().sum::<u64>(), 101);
        assert_eq!(parts, vec![51, 30, 20]);
    }

    #[test]
    fn range_is_inclusive_of_end_date() {
        let d = NaiveDate::from_ymd_opt(2026, 4, 7).unwrap_or_default();
        let r = DateRange { start: Some(midnight_ms(d)), end: Some(midnight_ms(d)) };
        assert!(r.contains(d));
        assert!(!r.contains(d.succ_opt().unwrap_or_default()));
    }
}
