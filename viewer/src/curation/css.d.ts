/** Vite bundles a stylesheet imported for its side effect (`import './curation.css'`) with the chunk that imports it. */
declare module '*.css';
