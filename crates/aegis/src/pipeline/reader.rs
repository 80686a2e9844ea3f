//! The API's window on history: series from the pipeline (which owns them),
//! anomalies, incidents and healing records from the store, each answered
//! by its one owner over a channel.

use aegis_api::{BoxFuture, HistoryReader, Unavailable};
use aegis_core::status::{
    ActionQuery, ActionRecord, AnomalyQuery, AnomalyRecord, Incident, IncidentQuery, SeriesDetail,
    SeriesSummary,
};
use aegis_store::{StoreError, StoreHandle};
use tokio::sync::{mpsc, oneshot};

/// Queries waiting for the pipeline at most.
pub const QUERY_QUEUE: usize = 64;

/// A question for the pipeline about its history.
pub(super) enum Query {
    List(oneshot::Sender<Vec<SeriesSummary>>),
    Get {
        name: String,
        since_ms: i64,
        reply: oneshot::Sender<Option<SeriesDetail>>,
    },
}

/// Asks the pipeline for history and the store for anomalies; given to the API.
#[derive(Clone)]
pub struct HistoryHandle {
    pub(super) tx: mpsc::Sender<Query>,
    pub(super) store: StoreHandle,
}

/// A store read's answer, a failure logged once and answered as unavailable.
fn answered<T>(what: &'static str, r: Result<T, StoreError>) -> Result<T, Unavailable> {
    r.map_err(|e| {
        if !matches!(e, StoreError::Busy | StoreError::Closed) {
            tracing::error!(error = %e, what, "reading the store");
        }
        Unavailable
    })
}

impl HistoryReader for HistoryHandle {
    fn list(&self) -> BoxFuture<'_, Result<Vec<SeriesSummary>, Unavailable>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Query::List(reply))
                .await
                .map_err(|_| Unavailable)?;
            rx.await.map_err(|_| Unavailable)
        })
    }

    fn get(
        &self,
        name: String,
        since_ms: i64,
    ) -> BoxFuture<'_, Result<Option<SeriesDetail>, Unavailable>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Query::Get {
                    name,
                    since_ms,
                    reply,
                })
                .await
                .map_err(|_| Unavailable)?;
            rx.await.map_err(|_| Unavailable)
        })
    }

    fn anomalies(
        &self,
        query: AnomalyQuery,
    ) -> BoxFuture<'_, Result<Vec<AnomalyRecord>, Unavailable>> {
        Box::pin(async move { answered("anomalies", self.store.anomalies(query).await) })
    }

    fn incidents(&self, query: IncidentQuery) -> BoxFuture<'_, Result<Vec<Incident>, Unavailable>> {
        Box::pin(async move { answered("incidents", self.store.incidents(query).await) })
    }

    fn actions(&self, query: ActionQuery) -> BoxFuture<'_, Result<Vec<ActionRecord>, Unavailable>> {
        Box::pin(async move { answered("healing records", self.store.actions(query).await) })
    }
}
