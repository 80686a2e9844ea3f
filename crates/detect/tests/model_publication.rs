//! While a new model trains, detection uses the previous model (or, before
//! the first one, reports warming up and leaves the decision to the
//! statistical detectors); it never sees a model that is partly built.

use std::sync::mpsc;

use aegis_detect::forest::{ForestConfig, ForestDetector, ForestDetectorConfig, Rng};
use aegis_detect::State;

fn row(rng: &mut Rng) -> Vec<f64> {
    vec![
        0.3 + 0.05 * rng.normal(),
        0.5 + 0.02 * rng.normal(),
        1.0 + 0.2 * rng.normal(),
    ]
}

#[test]
fn detection_during_training_uses_the_previous_model_never_a_partial_one() {
    let config = ForestDetectorConfig {
        window: 512,
        min_rows: 64,
        retrain_every: 64,
        forest: ForestConfig {
            trees: 100,
            sample_size: 64,
            seed: 1,
        },
    };
    let mut det = ForestDetector::new(config);
    let slot = det.slot();
    let mut rng = Rng::new(9);

    // Before any model: warming up, no model version, no score.
    for _ in 0..63 {
        let v = det.observe(&row(&mut rng));
        assert!(matches!(v.score.state, State::WarmingUp { needed: 64, .. }));
        assert_eq!((v.model_version, v.score.value), (None, 0.0));
        assert!(det.training_due().is_none());
    }
    det.observe(&row(&mut rng));

    // Version 1, trained and published whole.
    let job = det.training_due().expect("first training due");
    assert!(det.training_due().is_none(), "one training at a time");
    slot.publish(job.run().expect("fit"));
    det.training_done();
    let v = det.observe(&row(&mut rng));
    assert_eq!(v.model_version, Some(1));
    assert_eq!(v.score.state, State::Ready);

    // Version 2 trains on another thread and stops half-way.
    for _ in 0..64 {
        det.observe(&row(&mut rng));
    }
    let job = det.training_due().expect("retraining due");
    let (half_tx, half_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let trainer = std::thread::spawn(move || {
        job.run_with_progress(|built| {
            if built == 50 {
                let _ = half_tx.send(());
                let _ = go_rx.recv();
            }
        })
    });
    half_rx.recv().expect("training reached half-way");
    for _ in 0..200 {
        let v = det.observe(&row(&mut rng));
        assert_eq!(
            v.model_version,
            Some(1),
            "a model other than the previous one was used"
        );
        assert_eq!(v.score.state, State::Ready);
        let current = slot.current().expect("a model is published");
        assert_eq!(
            current.model.forest.trees(),
            100,
            "a partly built forest is visible"
        );
    }
    go_tx.send(()).expect("release the trainer");
    let model = trainer.join().expect("trainer thread").expect("fit");
    assert_eq!(model.forest.trees(), 100);
    assert_eq!(slot.publish(model), 2);
    det.training_done();
    assert_eq!(det.observe(&row(&mut rng)).model_version, Some(2));
}

#[test]
fn a_far_row_scores_high_and_names_the_feature_that_moved() {
    let mut det = ForestDetector::new(ForestDetectorConfig {
        min_rows: 256,
        ..ForestDetectorConfig::default()
    });
    let slot = det.slot();
    let mut rng = Rng::new(3);
    for _ in 0..256 {
        det.observe(&row(&mut rng));
    }
    slot.publish(det.training_due().expect("due").run().expect("fit"));
    det.training_done();
    let mut normal = 0.0f64;
    for _ in 0..500 {
        normal = normal.max(det.observe(&row(&mut rng)).raw.unwrap_or(1.0));
    }
    let v = det.observe(&[0.3, 0.5, 9.0]);
    assert!(
        v.raw.unwrap_or(0.0) > normal,
        "far row {:?} vs normal max {normal}",
        v.raw
    );
    assert_eq!(v.moved[0].feature, 2, "{:?}", v.moved);
    assert!(v.score.value > 0.999, "{:?}", v.score);
}
