//! Planning: the open alarms, the outbox and the on-call rotations at `now` decide which
//! notifications are due; the missing ones are written to the outbox. Planning again
//! writes nothing new.

use super::*;

impl Dispatcher {
    /// Writes every due, missing notification to the outbox. Returns how many are new.
    pub fn plan(&mut self, now: TimestampMs) -> Result<usize, StoreError> {
        let open = self.store.with_conn(|c| alarms::query_alarms(c, true, None))?;
        let mut new = Vec::new();
        for a in &open {
            // Acknowledged and suppressed alarms are not escalated. A member of a power
            // incident is paged through the incident's alarm while that alarm is open and
            // unacknowledged — unless it is more severe than anything the incident paged
            // yet: then it pages on its own escalation as an incident update. Once
            // someone owns the incident, or power is back, a member escalates on its own.
            let incident = a.incident.filter(|i| *i != a.id).and_then(|i| {
                open.iter()
                    .find(|o| o.id == i && o.state == crate::model::AlarmState::Active)
            });
            let update = match incident {
                Some(inc) => {
                    let members = self.store.with_conn(|c| alarms::incident_members(c, inc.id))?;
                    let worse = crate::notify::incident::brings_worse(a, inc, &members, |m| self.is_power(m));
                    Some((inc, worse, members))
                }
                None => None,
            };
            let covered = matches!(update, Some((_, false, _)));
            if a.state != crate::model::AlarmState::Active || a.suppressed.is_some() || covered {
                continue;
            }
            let Some(esc) = self.escalation_for(a) else { continue };
            let Some((cycle, start)) = self.store.with_conn(|c| outbox::cycle_start(c, a.id))? else {
                continue;
            };
            let mut text = None;
            // Only the latest due occurrence of each step: after the daemon was down
            // through several rounds, each step pages once, not once per missed round.
            let mut latest: Vec<escalation::Due> = Vec::new();
            for d in escalation::due(esc, start, now) {
                match latest.iter_mut().find(|l| l.step == d.step) {
                    Some(l) if l.round < d.round => *l = d,
                    Some(_) => {}
                    None => latest.push(d),
                }
            }
            for d in latest {
                let planned = self
                    .store
                    .with_conn(|c| outbox::step_planned(c, a.id, cycle, d.round as i64, d.step as i64))?;
                if planned {
                    continue;
                }
                let text = text.get_or_insert_with(|| match &update {
                    Some((inc, _, members)) => {
                        let mut facts = self.facts(a, &open);
                        facts.incident = Some((inc.id, format!("{} {}", inc.sensor, inc.rule)));
                        facts.members = crate::notify::incident::member_lines(members);
                        message::compose(&self.cfg, a, Kind::Update, &facts, now)
                    }
                    None => message::compose(&self.cfg, a, Kind::Page, &self.facts(a, &open), now),
                });
                let step = &esc.steps[d.step];
                let contacts = escalation::recipients(&self.cfg.notify, step, &self.tz, now);
                if contacts.is_empty() {
                    tracing::error!(alarm_id = a.id, escalation = %esc.id, step = d.step, "escalation step has nobody to page");
                }
                for contact in contacts {
                    for channel in self.channels_for(&step.via, contact) {
                        new.push(NewNotification {
                            alarm: Some(a.id),
                            kind: "page".into(),
                            cycle,
                            round: d.round as i64,
                            step: d.step as i64,
                            contact: contact.id.clone(),
                            body: crate::notify::acklink::page_body(
                                &self.cfg,
                                &self.store,
                                &text.body,
                                a.id,
                                &contact.id,
                                &channel,
                                now,
                            ),
                            channel,
                            subject: text.subject.clone(),
                            sms: text.sms.clone(),
                        });
                    }
                }
            }
        }
        // Return to normal, to everyone a page of the alarm reached.
        let cleared = self
            .store
            .with_conn(|c| outbox::cleared_unannounced(c, now - RTN_WINDOW))?;
        for id in cleared {
            let Some(a) = self
                .store
                .with_conn(|c| alarms::query_alarms(c, false, Some(id)))?
                .pop()
            else {
                continue;
            };
            // A member whose incident is over is announced in the incident's return to
            // normal (the query leaves out those already announced there).
            if let Some(i) = a.incident.filter(|i| *i != a.id) {
                let over = self
                    .store
                    .with_conn(|c| alarms::query_alarms(c, false, Some(i)))?
                    .pop()
                    .is_some_and(|inc| inc.state == crate::model::AlarmState::Cleared);
                if over && !self.store.with_conn(|c| outbox::normal_planned(c, i))? {
                    continue;
                }
            }
            let members = self.store.with_conn(|c| alarms::incident_members(c, id))?;
            if crate::notify::incident::settling(&members, a.cleared_at.unwrap_or(now), now) {
                continue;
            }
            let mut facts = self.facts(&a, &open);
            if !members.is_empty() {
                // The list below says which members are still open.
                facts.affected.clear();
                facts.members = crate::notify::incident::member_lines(&members);
            }
            let text = message::compose(&self.cfg, &a, Kind::Normal, &facts, now);
            // Everyone paged for the alarm, and, for an incident, for any member this
            // message announces.
            let mut to = self.store.with_conn(|c| outbox::paged(c, id))?;
            for m in members.iter().filter(|m| m.state == crate::model::AlarmState::Cleared) {
                for r in self.store.with_conn(|c| outbox::paged(c, m.id))? {
                    if !to.contains(&r) {
                        to.push(r);
                    }
                }
            }
            for (contact, channel) in to {
                new.push(NewNotification {
                    alarm: Some(id),
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
        // Answers to acknowledgements by SMS, once the engine's answer is on disk.
        for r in self
            .store
            .with_conn(|c| outbox::sms_acks_answered(c, now - REPLY_WINDOW))?
        {
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
        let count = self.store.transaction(|c| {
            let mut n = 0;
            for x in &new {
                n += usize::from(outbox::enqueue(c, x, now)?.is_some());
            }
            Ok(n)
        })?;
        Ok(count)
    }
}
