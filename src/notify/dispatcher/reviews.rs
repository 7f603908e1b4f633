//! Periodic reviews to their reviewers: a review the review worker generated is sent
//! to the `[[review]] reviewers` of its asset with a link to sign; a review not signed
//! by its due time is paged, once, to `[quality] notify`.

use super::*;
use crate::store::quality::review::Review;

impl Dispatcher {
    /// Sends every review generated and not yet sent, and reminds of overdue ones.
    pub fn review_pages(&mut self, now: TimestampMs) -> Result<(), StoreError> {
        if self.cfg.quality.reviews.is_empty() {
            return Ok(());
        }
        for r in self.store.unsent_reviews()? {
            let targets = self
                .cfg
                .quality
                .reviews
                .iter()
                .find(|c| c.every.as_str() == r.every && c.assets.contains(&r.asset))
                .map(|c| c.reviewers.clone())
                .unwrap_or_default();
            let (subject, body, sms) = self.review_texts(&r, "is ready for review");
            let pages = self.pages_to(
                &targets,
                Page::about("review", None, r.id),
                now,
                (&subject, &body, &sms),
            );
            if pages.is_empty() {
                tracing::error!(review = r.id, asset = %r.asset, period = %r.period, "a periodic review reaches no reviewer");
            }
            self.store.send_review(r.id, &pages, now)?;
        }
        for r in self.store.reviews_to_remind(now)? {
            let (subject, body, sms) = self.review_texts(&r, "is overdue: nobody has signed it");
            let targets = self.cfg.quality.notify.clone();
            let pages = self.pages_to(
                &targets,
                Page::about("review-overdue", None, r.id),
                now,
                (&subject, &body, &sms),
            );
            self.store.remind_review(r.id, &pages, now)?;
            tracing::warn!(review = r.id, asset = %r.asset, period = %r.period, "periodic review overdue");
        }
        Ok(())
    }

    /// Subject, mail body and SMS of a review page.
    fn review_texts(&self, r: &Review, what: &str) -> (String, String, String) {
        let site = &self.cfg.site.name;
        let name = self
            .cfg
            .assets
            .iter()
            .find(|a| a.id == r.asset)
            .map_or(r.asset.as_str(), |a| a.name.as_str());
        let subject = format!("REVIEW {site}: {name} ({}) for {} {what}", r.asset, r.period);
        let due = crate::model::format_rfc3339(r.due_at);
        let link = match self.cfg.sections.api_public_url.as_deref() {
            Some(base) => format!(
                "Read and sign it on the dashboard: {}/reviews#review-{}\n\n",
                base.trim_end_matches('/'),
                r.id
            ),
            None => String::new(),
        };
        let body = format!(
            "The {} report of {name} ({}) for {} (version {}, generated {}) awaits review and \
             sign-off by {due}.\n\nReport SHA-256: {}\n\n{link}Or from the command line:\n\n  \
             cryowatch review sign -c FILE --asset {} --period {} --by USER --meaning reviewed|approved\n",
            r.every,
            r.asset,
            r.period,
            r.version,
            crate::model::format_rfc3339(r.generated_at),
            r.report_sha256,
            r.asset,
            r.period,
        );
        let sms = format!(
            "cryowatch {site}: review of {} for {} {what}; due {due}",
            r.asset, r.period
        );
        (subject, body, sms)
    }
}
