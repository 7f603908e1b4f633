//! Planning: read the facts ([`crate::store::planning`]), decide what is due
//! ([`super::decide`], pure), write the texts and put the missing notifications in the
//! outbox. Planning again writes nothing new.

use super::decide::{self, Planned, Policy};
use super::*;

impl Dispatcher {
    /// What planning is configured with.
    pub(super) fn policy<'a>(&'a self, reaching: &'a dyn Fn(&Contact) -> Vec<String>) -> Policy<'a> {
        Policy {
            cfg: &self.cfg,
            tz: &self.tz,
            reaching,
        }
    }

    /// Writes every due, missing notification to the outbox. Returns how many are new.
    pub fn plan(&mut self, now: TimestampMs) -> Result<usize, StoreError> {
        let facts = self.store.plan_facts(now - RTN_WINDOW, now - REPLY_WINDOW)?;
        let reaching = |c: &Contact| self.reaching(c);
        let planned = decide::decide(&self.policy(&reaching), &facts, now);
        let mut new = Vec::new();
        // One text per alarm and kind, shared by its recipients.
        let mut texts: HashMap<(i64, bool), message::Text> = HashMap::new();
        for p in planned {
            match p {
                Planned::Page {
                    alarm,
                    update_of,
                    cycle,
                    round,
                    step,
                    to,
                } => {
                    let Some(a) = facts.open.iter().find(|a| a.id == alarm) else {
                        continue;
                    };
                    let text = texts.entry((alarm, true)).or_insert_with(|| match update_of {
                        Some(inc) => {
                            let mut f = self.facts(a, &facts.open, now);
                            let inc_row = facts.open.iter().find(|o| o.id == inc);
                            f.incident = inc_row.map(|i| (i.id, format!("{} {}", i.sensor, i.rule)));
                            f.members = crate::notify::incident::member_lines(facts.members_of(inc));
                            message::compose(&self.cfg, a, Kind::Update, &f, now)
                        }
                        None => message::compose(&self.cfg, a, Kind::Page, &self.facts(a, &facts.open, now), now),
                    });
                    for (contact, channel) in to {
                        new.push(NewNotification {
                            alarm: Some(alarm),
                            kind: "page".into(),
                            cycle,
                            round: i64::from(round),
                            step: step as i64,
                            body: crate::notify::acklink::page_body(
                                &self.cfg,
                                &self.store,
                                &text.body,
                                alarm,
                                &contact,
                                &channel,
                                now,
                            ),
                            contact,
                            channel,
                            subject: text.subject.clone(),
                            sms: text.sms.clone(),
                        });
                    }
                }
                Planned::Normal { alarm, to } => {
                    let Some(cl) = facts.cleared.iter().find(|c| c.alarm.id == alarm) else {
                        continue;
                    };
                    let text = texts.entry((alarm, false)).or_insert_with(|| {
                        let mut f = self.facts(&cl.alarm, &facts.open, now);
                        let members = facts.members_of(alarm);
                        if !members.is_empty() {
                            // The list below says which members are still open.
                            f.affected.clear();
                            f.members = crate::notify::incident::member_lines(members);
                        }
                        message::compose(&self.cfg, &cl.alarm, Kind::Normal, &f, now)
                    });
                    for (contact, channel) in to {
                        new.push(NewNotification {
                            alarm: Some(alarm),
                            kind: "normal".into(),
                            cycle: 0,
                            round: 0,
                            step: 0,
                            contact,
                            channel,
                            subject: text.subject.clone(),
                            body: text.body.clone(),
                            sms: text.sms.clone(),
                        });
                    }
                }
                Planned::Reply(r) => {
                    let text = crate::notify::inbound::answer(r.alarm, r.ok, &r.result);
                    new.push(NewNotification {
                        alarm: Some(r.alarm),
                        kind: "reply".into(),
                        cycle: r.request,
                        round: 0,
                        step: 0,
                        contact: r.contact,
                        channel: r.via,
                        subject: format!("ACK {}", r.alarm),
                        body: text.clone(),
                        sms: text,
                    });
                }
            }
        }
        self.store.enqueue_notifications(&new, now)
    }
}
