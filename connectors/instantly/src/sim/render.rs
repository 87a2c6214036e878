//! Builds lead and email items as the API returns them, from the compact
//! records of `data.rs`. Fields that never change are derived from the item's
//! id, so the same item always renders the same way.

use serde::Serialize;
use serde_json::{Value, json};

use super::data::{Email, Lead, NO_INTEREST, NO_LIST, NONE, Store};
use super::util::{
    COMPANY_A, COMPANY_B, FIRST_NAMES, Id, JOB_TITLES, LAST_NAMES, Mix, PERSONALIZATIONS, REPLIES, SUBJECTS, TLDS, Ts,
    ts, uuid_str,
};

/// Optional lead fields a mutation may remove (bit `i` of [`Lead::removed`]).
pub(crate) const LEAD_OPTIONAL: &[&str] =
    &["phone", "website", "personalization", "job_title", "company_name", "payload", "assigned_to", "last_name"];

/// Identity fields of a lead, derived from its id.
pub(crate) struct Person {
    pub first: &'static str,
    pub last: &'static str,
    pub company: String,
    pub domain: String,
    pub email: Option<String>,
    mix: Mix,
}

/// Appends the lowercase ASCII letters and digits of `s` to `out`.
fn push_ascii_local(out: &mut String, s: &str) {
    out.extend(s.bytes().filter(u8::is_ascii_alphanumeric).map(|b| char::from(b.to_ascii_lowercase())));
}

pub(crate) fn person(lead: &Lead) -> Person {
    let mut m = Mix::from_id(lead.id, 0x1ead);
    let first = *m.pick(FIRST_NAMES);
    let last = *m.pick(LAST_NAMES);
    let a = *m.pick(COMPANY_A);
    let b = *m.pick(COMPANY_B);
    let tld = *m.pick(TLDS);
    let mut domain = String::with_capacity(32);
    push_ascii_local(&mut domain, a);
    push_ascii_local(&mut domain, b);
    domain.push('.');
    domain.push_str(tld);
    // About one lead in a hundred has no email (the old collector's `email NOT NULL`
    // column rejected such leads; ferry keys leads by id and keeps them).
    let has_email = m.below(100) != 0;
    let suffix = m.below(1000);
    let email = has_email.then(|| {
        let mut e = String::with_capacity(64);
        push_ascii_local(&mut e, first);
        e.push('.');
        push_ascii_local(&mut e, last);
        if suffix % 2 == 1 {
            e.push_str(&suffix.to_string());
        }
        e.push('@');
        e.push_str(&domain);
        e
    });
    let mut company = String::with_capacity(a.len() + b.len() + 1);
    company.push_str(a);
    company.push(' ');
    company.push_str(b);
    Person { first, last, company, domain, email, mix: m }
}

pub(crate) fn lead_has_email(lead: &Lead) -> bool {
    person(lead).email.is_some()
}

/// `Some(Some(v))` renders `v`, `Some(None)` renders null, `None` omits the key.
type Opt<T> = Option<Option<T>>;

/// `status_summary`: `{}` for most leads, as in real data.
#[derive(Serialize)]
struct StatusSummary {
    #[serde(rename = "lastStep", skip_serializing_if = "Option::is_none")]
    last_step: Option<LastStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain_complete: Option<bool>,
}

#[derive(Serialize)]
struct LastStep {
    from: &'static str,
    #[serde(rename = "stepID")]
    step_id: Id,
    timestamp_executed: Ts,
}

/// `payload`: the custom variables, camelCase plus workspace-specific keys.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "firstName")]
    first_name: &'a str,
    #[serde(rename = "lastName", skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(rename = "companyName", skip_serializing_if = "Option::is_none")]
    company_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(rename = "jobTitle", skip_serializing_if = "Option::is_none")]
    job_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    employees: Option<u64>,
    #[serde(rename = "Company LinkedIn URL", skip_serializing_if = "Option::is_none")]
    linkedin: Option<String>,
}

#[derive(Serialize)]
struct LeadOut<'a> {
    id: Id,
    timestamp_created: Ts,
    timestamp_updated: Ts,
    organization: &'a str,
    status: i8,
    email_open_count: u16,
    email_reply_count: u16,
    email_click_count: u16,
    company_domain: &'a str,
    status_summary: StatusSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    list_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    first_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    company_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Opt<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    personalization: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Payload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_step_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_step_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_step_timestamp_executed: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_opened_step: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_opened_variant: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_replied_step: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_replied_variant: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_clicked_step: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_clicked_variant: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lt_interest_status: Option<i16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pl_value_lead: Opt<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_last_contact: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_last_open: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_last_reply: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_last_click: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_last_interest_change: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_last_touch: Option<Ts>,
    verification_status: i8,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrichment_status: Option<i8>,
    upload_method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded_by_user: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assigned_to: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_website_visitor: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_contacted_from: Option<String>,
    esp_code: i16,
    #[serde(skip_serializing_if = "Option::is_none")]
    esg_code: Option<u8>,
}

#[derive(Serialize)]
struct EmailBody {
    text: String,
    html: String,
}

#[derive(Serialize)]
struct EmailOut<'a> {
    id: String,
    timestamp_created: String,
    timestamp_email: String,
    message_id: String,
    subject: String,
    from_address_email: Option<String>,
    to_address_email_list: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cc_address_email_list: Opt<String>,
    reply_to: Option<String>,
    body: EmailBody,
    organization_id: &'a str,
    campaign_id: Option<&'a str>,
    subsequence_id: Option<String>,
    list_id: Option<String>,
    lead: Option<String>,
    lead_id: Option<String>,
    eaccount: String,
    ue_type: u8,
    step: Option<String>,
    is_unread: u8,
    is_auto_reply: u8,
    is_focused: u8,
    i_status: Option<i16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reminder_ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ai_interest_value: Option<f64>,
    thread_id: String,
    content_preview: String,
    attachment_json: Option<Value>,
}

impl Store {
    fn step_of(&self, lead: &Lead, m: &mut Mix) -> (u8, u8) {
        match self.campaigns.get(lead.campaign as usize) {
            Some(c) if !c.variants.is_empty() => {
                let s = m.below(c.variants.len() as u64) as usize;
                (s as u8, m.below(u64::from(c.variants[s])) as u8)
            }
            _ => (0, 0),
        }
    }

    fn lead_out<'a>(&'a self, lead: &Lead, p: &'a mut Person) -> LeadOut<'a> {
        let m = &mut p.mix;
        let removed = |name: &str| {
            LEAD_OPTIONAL.iter().position(|f| *f == name).is_some_and(|bit| lead.removed & (1 << bit) != 0)
        };
        let keep = |name: &str, present: bool| present && !removed(name);
        // Every draw happens whether or not its field is kept, so removing one field
        // leaves every other field of the lead as it was.
        let (job_present, job_pick) = (m.chance(0.7), *m.pick(JOB_TITLES));
        let job_title = keep("job_title", job_present).then_some(job_pick);
        let (phone_present, phone_cleared, phone_number) = (m.chance(0.6), m.chance(0.1), m.below(10_000_000_000));
        // A few phones were cleared in the app: null rather than absent.
        let phone = keep("phone", phone_present)
            .then(|| if phone_cleared { None } else { Some(format!("+1{phone_number:010}")) });
        let website = keep("website", m.chance(0.5));
        let (pers_present, pers_pick) = (m.chance(0.3), *m.pick(PERSONALIZATIONS));
        let personalization = keep("personalization", pers_present).then_some(pers_pick);
        let payload = keep("payload", m.chance(0.8));
        let assigned = keep("assigned_to", m.chance(0.4));
        let company = keep("company_name", m.chance(0.9));
        let last_name = keep("last_name", m.chance(0.95));
        let verification = *m.pick(&[1i8, 1, 1, 1, 1, 1, 1, -3, -2, 11, -1, 12]);
        let enrichment = m.chance(0.5).then(|| *m.pick(&[1i8, 11, -1, -2]));
        let esp_code = *m.pick(&[1i16, 1, 1, 2, 2, 0, 3, 999, 1000, 9, 8]);
        let esg_code = m.chance(0.2).then(|| m.below(5) as u8);
        let upload_method = *m.pick(&["manual", "manual", "api", "api", "api", "website-visitor"]);
        let user = self.user(m.next());
        let pl_value = m.chance(0.05).then(|| if m.chance(0.5) { Some("1000".to_owned()) } else { None });
        let (open_step, open_var) = self.step_of(lead, m);
        let (reply_step, reply_var) = self.step_of(lead, m);
        let (click_step, click_var) = self.step_of(lead, m);
        let step_id = Id(super::util::uuid_v4(u128::from(m.next()) << 64 | u128::from(m.next())));
        let sender = (!self.accounts.is_empty())
            .then(|| self.accounts[m.below(self.accounts.len() as u64) as usize].email.clone());
        let summary_full = m.chance(0.5);
        let domain_complete = m.chance(0.3);

        let contact = lead.contact_ms();
        let engage = lead.engage_ms();
        let interest_at = lead.interest_ms();
        let touch = [contact, engage, interest_at].into_iter().flatten().max();
        let has_interest = lead.interest != NO_INTEREST;

        let status_summary = StatusSummary {
            last_step: contact.filter(|_| summary_full).map(|c| LastStep {
                from: "campaign",
                step_id,
                timestamp_executed: Ts(c),
            }),
            domain_complete: (contact.is_some() && summary_full).then_some(domain_complete),
        };
        let payload = payload.then(|| Payload {
            first_name: p.first,
            last_name: last_name.then_some(p.last),
            company_name: company.then_some(p.company.as_str()),
            email: p.email.as_deref(),
            job_title,
            employees: lead.id.is_multiple_of(3).then_some(10 + (lead.id % 490) as u64),
            linkedin: lead.id.is_multiple_of(3).then(|| format!("https://www.linkedin.com/company/{}", p.domain)),
        });
        LeadOut {
            id: Id(lead.id),
            timestamp_created: Ts(lead.created_ms),
            timestamp_updated: Ts(lead.updated_ms),
            organization: &self.org_str,
            status: lead.status,
            email_open_count: lead.opens,
            email_reply_count: lead.replies,
            email_click_count: lead.clicks,
            company_domain: &p.domain,
            status_summary,
            campaign: self.campaigns.get(lead.campaign as usize).map(|c| c.id_str.as_str()),
            list_id: (lead.list != NO_LIST).then(|| Id(self.lists[usize::from(lead.list) % self.lists.len()])),
            email: p.email.as_deref(),
            first_name: p.first,
            last_name: last_name.then_some(p.last),
            company_name: company.then_some(p.company.as_str()),
            job_title,
            phone,
            website: website.then(|| format!("https://www.{}", p.domain)),
            personalization,
            payload,
            last_step_from: contact.map(|_| "campaign"),
            last_step_id: contact.map(|_| step_id),
            last_step_timestamp_executed: contact.map(Ts),
            email_opened_step: (lead.opens > 0).then_some(open_step),
            email_opened_variant: (lead.opens > 0).then_some(open_var),
            email_replied_step: (lead.replies > 0).then_some(reply_step),
            email_replied_variant: (lead.replies > 0).then_some(reply_var),
            email_clicked_step: (lead.clicks > 0).then_some(click_step),
            email_clicked_variant: (lead.clicks > 0).then_some(click_var),
            lt_interest_status: has_interest.then_some(lead.interest),
            pl_value_lead: pl_value,
            timestamp_last_contact: contact.map(Ts),
            timestamp_last_open: engage.filter(|_| lead.opens > 0).map(Ts),
            timestamp_last_reply: engage.filter(|_| lead.replies > 0).map(Ts),
            timestamp_last_click: engage.filter(|_| lead.clicks > 0).map(Ts),
            timestamp_last_interest_change: interest_at.filter(|_| has_interest).map(Ts),
            timestamp_last_touch: touch.map(Ts),
            verification_status: verification,
            enrichment_status: enrichment,
            upload_method,
            uploaded_by_user: (upload_method != "website-visitor").then_some(Id(user)),
            assigned_to: assigned.then(|| Id(self.user(lead.id as u64 >> 7))),
            is_website_visitor: (upload_method == "website-visitor").then_some(true),
            last_contacted_from: contact.and(sender),
            esp_code,
            esg_code,
        }
    }

    /// Appends lead `idx` as JSON to `out`.
    pub(crate) fn write_lead(&self, idx: u32, out: &mut Vec<u8>) {
        let lead = &self.leads[idx as usize];
        let mut p = person(lead);
        let item = self.lead_out(lead, &mut p);
        // Serializing a plain struct into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &item);
    }

    /// Lead `idx` as a JSON value.
    pub(crate) fn lead_value(&self, idx: u32) -> Value {
        let lead = &self.leads[idx as usize];
        let mut p = person(lead);
        serde_json::to_value(self.lead_out(lead, &mut p)).unwrap_or_default()
    }

    /// Whether lead `idx` currently renders the key `field`.
    pub(crate) fn lead_renders(&self, idx: u32, field: &str) -> bool {
        self.lead_value(idx).get(field).is_some()
    }

    fn account_email(&self, idx: u32) -> String {
        self.accounts.get(idx as usize).map_or_else(|| "sender@outreach-example.com".to_owned(), |a| a.email.clone())
    }

    fn email_out(&self, e: &Email) -> EmailOut<'_> {
        let mut m = Mix::from_id(e.id, 0xe3a1);
        let lead = self.leads.get(e.lead as usize).filter(|_| e.lead != NONE);
        let person = lead.map(person);
        let lead_email = person.as_ref().and_then(|p| p.email.clone());
        let first = person.as_ref().map_or("there", |p| p.first);
        let company = person.as_ref().map_or("your company", |p| p.company.as_str());
        let eaccount = self.account_email(e.account);
        let sent = e.ue_type != 2;
        let (from, to) = if sent {
            (Some(eaccount.clone()), lead_email.clone().unwrap_or_else(|| "unknown@example.com".into()))
        } else {
            (lead_email.clone(), eaccount.clone())
        };
        let template = *m.pick(SUBJECTS);
        let subject_base = template.replace("{{firstName}}", first).replace("{{companyName}}", company);
        let (subject, text) = if sent {
            (
                subject_base,
                format!("Hi {first},\n\nWould it make sense to talk about {company}'s outbound this month?\n\nBest"),
            )
        } else {
            (format!("Re: {subject_base}"), (*m.pick(REPLIES)).to_owned())
        };
        let html = format!("<div>{}</div>", text.replace('\n', "<br>"));
        let content_preview: String = text.chars().take(80).collect();
        let domain = eaccount.split('@').nth(1).unwrap_or("example.com");
        let message_id = format!("<{:016x}@mail.{domain}>", m.next());
        let cc = m.chance(0.3).then_some(None);
        let campaign = self.campaigns.get(e.campaign as usize).filter(|_| e.campaign != NONE);
        // A float in a `number` field.
        let ai_interest_value = (!sent).then(|| *m.pick(&[0.25, 0.5, 0.75, 0.9]));
        let attachment_json = m.chance(0.05).then(|| {
            json!({"files": [{"filename": "deck.pdf", "size": 48213, "type": "application/pdf",
                "url": format!("https://files.example.com/{}", uuid_str(e.id)), "error": null}]})
        });
        EmailOut {
            id: uuid_str(e.id),
            timestamp_created: ts(e.created_ms),
            timestamp_email: ts(e.created_ms - i64::from(e.header_lag_ms)),
            message_id,
            subject,
            from_address_email: from,
            to_address_email_list: to,
            cc_address_email_list: cc,
            reply_to: None,
            body: EmailBody { text, html },
            organization_id: &self.org_str,
            campaign_id: campaign.map(|c| c.id_str.as_str()),
            subsequence_id: None,
            list_id: lead
                .filter(|l| l.list != NO_LIST)
                .map(|l| uuid_str(self.lists[usize::from(l.list) % self.lists.len()])),
            lead: lead_email,
            lead_id: lead.map(|l| uuid_str(l.id)),
            eaccount,
            ue_type: e.ue_type,
            step: e.step.map(|(s, _)| s.to_string()),
            is_unread: e.is_unread,
            is_auto_reply: e.is_auto_reply,
            is_focused: e.is_focused,
            i_status: e.i_status,
            reminder_ts: (e.ue_type == 4).then(|| ts(e.created_ms + 86_400_000)),
            ai_interest_value,
            thread_id: uuid_str(e.thread),
            content_preview,
            attachment_json,
        }
    }

    /// Email at sorted position `pos` as a JSON value.
    pub(crate) fn email_value(&self, pos: usize) -> Value {
        serde_json::to_value(self.email_out(&self.emails[pos])).unwrap_or_default()
    }

    /// Appends the email at sorted position `pos` as JSON to `out`.
    pub(crate) fn write_email(&self, pos: usize, out: &mut Vec<u8>) {
        let _ = serde_json::to_writer(out, &self.email_out(&self.emails[pos]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_is_stable() {
        let lead = Lead {
            id: 42,
            created_ms: 0,
            updated_ms: 0,
            contact_s: 0,
            engage_s: 0,
            interest_s: 0,
            campaign: NONE,
            list: NO_LIST,
            interest: NO_INTEREST,
            opens: 0,
            replies: 0,
            clicks: 0,
            removed: 0,
            status: 1,
        };
        let a = person(&lead);
        let b = person(&lead);
        assert_eq!(a.email, b.email);
        assert_eq!(a.company, b.company);
        assert!(a.domain.is_ascii());
    }
}
