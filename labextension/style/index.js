import './base.css';
import './permission.css';
